"""The inventory service: stock levels and per-order reservations."""
