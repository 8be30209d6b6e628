-- The shipping service's shipments (services/shipping/store.py); one per order.
CREATE TABLE IF NOT EXISTS shipments (
    shipment_id             TEXT PRIMARY KEY,
    order_id                TEXT NOT NULL UNIQUE,
    status                  TEXT NOT NULL,  -- SCHEDULED | CANCELLED
    carrier                 TEXT NOT NULL,
    tracking_number         TEXT NOT NULL UNIQUE,
    address                 TEXT NOT NULL,  -- proto JSON of shop.common.v1.Address
    items                   TEXT NOT NULL,  -- JSON list of proto JSON shop.common.v1.LineItem
    estimated_delivery_time BIGINT NOT NULL, -- epoch microseconds
    cancel_reason           TEXT NOT NULL,
    create_time             BIGINT NOT NULL,
    update_time             BIGINT NOT NULL
);
