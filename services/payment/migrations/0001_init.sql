-- The payment service's payments (services/payment/store.py); one per order.
CREATE TABLE IF NOT EXISTS payments (
    payment_id     TEXT PRIMARY KEY,
    order_id       TEXT NOT NULL UNIQUE,
    amount_units   BIGINT NOT NULL,
    amount_nanos   INTEGER NOT NULL,
    currency       TEXT NOT NULL,
    status         TEXT NOT NULL,   -- CAPTURED | DECLINED | REFUNDED
    decline_reason TEXT NOT NULL,
    refund_reason  TEXT NOT NULL,
    create_time    BIGINT NOT NULL, -- epoch microseconds
    update_time    BIGINT NOT NULL
);
