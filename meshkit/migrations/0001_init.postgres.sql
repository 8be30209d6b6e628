-- The runtime's own tables (meshkit.events), in every service's database.

-- The transactional outbox (meshkit/events/outbox.py): events written in the transaction
-- of the change that caused them, published afterwards by the relay.
CREATE TABLE IF NOT EXISTS mesh_outbox (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    TEXT NOT NULL UNIQUE,
    subject     TEXT NOT NULL,
    data        BYTEA NOT NULL,
    create_time BIGINT NOT NULL,  -- epoch microseconds
    sent_time   BIGINT
);
CREATE INDEX IF NOT EXISTS mesh_outbox_unsent ON mesh_outbox (seq) WHERE sent_time IS NULL;

-- The events a consumer has handled (meshkit/events/service_events.py): a redelivered
-- event finds its id here and has no second effect.
CREATE TABLE IF NOT EXISTS mesh_processed_events (
    event_id     TEXT PRIMARY KEY,
    event_type   TEXT NOT NULL,
    process_time BIGINT NOT NULL
);

-- A saga participant's ledger of its steps (meshkit/events/steps.py).
CREATE TABLE IF NOT EXISTS mesh_saga_steps (
    flow_id     TEXT NOT NULL,     -- the flow's id (e.g. the order id)
    step        TEXT NOT NULL,     -- which of the participant's steps
    status      TEXT NOT NULL,     -- PENDING | DONE | CANCELLED
    payload     TEXT NOT NULL,     -- JSON of what the step needs; 'null' once not PENDING
    create_time BIGINT NOT NULL,   -- epoch microseconds
    update_time BIGINT NOT NULL,
    PRIMARY KEY (flow_id, step)
);
