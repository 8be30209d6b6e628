"""The payment service: captures and refunds an order's amount."""
