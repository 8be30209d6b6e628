"""The shipping service: schedules and cancels an order's shipment."""
