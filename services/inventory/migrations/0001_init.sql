-- The inventory's stock and reservations (services/inventory/store.py). Portable SQL:
-- BIGINT is a 64-bit integer in both SQLite and Postgres.
CREATE TABLE IF NOT EXISTS stock (
    sku         TEXT PRIMARY KEY,
    available   BIGINT NOT NULL CHECK (available >= 0),
    reserved    BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    sold        BIGINT NOT NULL DEFAULT 0 CHECK (sold >= 0),
    update_time BIGINT NOT NULL  -- epoch microseconds
);
CREATE TABLE IF NOT EXISTS reservations (
    order_id    TEXT PRIMARY KEY,
    status      TEXT NOT NULL,    -- RESERVED | REJECTED | RELEASED | COMMITTED
    items       TEXT NOT NULL,    -- JSON [[sku, quantity], ...]
    short_skus  TEXT NOT NULL,    -- JSON [sku, ...], for REJECTED
    create_time BIGINT NOT NULL,
    update_time BIGINT NOT NULL
);
