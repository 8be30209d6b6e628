"""The order service: places orders and runs the saga across inventory, payment, shipping."""
