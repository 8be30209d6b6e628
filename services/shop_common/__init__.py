"""Small helpers the shop's services share: money, addresses, time, paging."""
