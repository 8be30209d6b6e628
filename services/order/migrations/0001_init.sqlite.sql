-- The order service: its write model (services/order/store.py) and its read model
-- (services/order/view.py).
CREATE TABLE IF NOT EXISTS order_state (
    order_id      TEXT PRIMARY KEY,
    customer_id   TEXT NOT NULL,
    status        TEXT NOT NULL,  -- PENDING | STOCK_RESERVED | PAID | CONFIRMED | CANCELLED
    create_time   BIGINT NOT NULL, -- epoch microseconds
    update_time   BIGINT NOT NULL,
    deadline_time BIGINT NOT NULL  -- the saga is cancelled if not final by then
);
CREATE INDEX IF NOT EXISTS order_state_open ON order_state (deadline_time)
    WHERE status NOT IN ('CONFIRMED', 'CANCELLED');
CREATE TABLE IF NOT EXISTS order_idempotency_keys (
    customer_id TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,  -- sha256 of the PlaceOrderRequest
    order_id    TEXT NOT NULL REFERENCES order_state (order_id),
    PRIMARY KEY (customer_id, key)
);

CREATE TABLE IF NOT EXISTS order_views (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,  -- placement order, for stable paging
    order_id    TEXT NOT NULL UNIQUE,
    customer_id TEXT NOT NULL,
    status      TEXT NOT NULL,
    data        BLOB NOT NULL  -- shop.order.v1.Order
);
CREATE INDEX IF NOT EXISTS order_views_by_customer ON order_views (customer_id, seq);
CREATE INDEX IF NOT EXISTS order_views_by_status ON order_views (status, seq);
