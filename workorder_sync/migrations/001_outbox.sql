-- The work-order feature owns work_order (created by the core's 005 for the
-- screen-pop): the whole order as JSON beside the columns that are searched,
-- the day counters that number orders, the transactional outbox to the city
-- with its per-order delivery heads, the city's status events as received,
-- and the webhook nonces.
ALTER TABLE work_order ALTER COLUMN appeal_type DROP NOT NULL;
ALTER TABLE work_order DROP CONSTRAINT IF EXISTS work_order_appeal_type_check;
ALTER TABLE work_order ADD CONSTRAINT work_order_appeal_type_check CHECK (appeal_type IS NULL OR
    appeal_type IN ('CONSULT', 'HELP', 'COMPLAINT', 'REPORT', 'SUGGEST', 'PRAISE'));
ALTER TABLE work_order
    ADD COLUMN doc          jsonb,
    ADD COLUMN version      integer NOT NULL DEFAULT 1,
    ADD COLUMN agent        text,
    ADD COLUMN deadline     timestamptz,
    ADD COLUMN city_seq     integer NOT NULL DEFAULT 0;   -- the city's last status event applied
CREATE INDEX work_order_status_deadline ON work_order (status, deadline);
CREATE INDEX work_order_call ON work_order (call_id) WHERE call_id IS NOT NULL;

-- Order numbers: date + sequence, never reused (a counter row per day,
-- incremented in the transaction that creates the order).
CREATE TABLE work_order_day (
    prefix  text NOT NULL,
    day     date NOT NULL,
    last    integer NOT NULL,
    PRIMARY KEY (prefix, day)
);

-- The outbox: written in the same transaction as the order change it
-- reports. Delivered in seq order per order, exactly once as far as the
-- city can tell (idempotency key; a lookup before re-creating).
CREATE TABLE workorder_outbox (
    id               bigserial PRIMARY KEY,
    order_no         text NOT NULL,
    seq              integer NOT NULL,
    kind             text NOT NULL,
    idempotency_key  text NOT NULL UNIQUE,
    payload          jsonb NOT NULL,
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    first_attempt_at timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    UNIQUE (order_no, seq)
);
CREATE INDEX workorder_outbox_pending ON workorder_outbox (order_no, seq) WHERE state <> 'delivered';
CREATE INDEX workorder_outbox_delivered ON workorder_outbox (delivered_at) WHERE state = 'delivered';

-- One row per order with messages to deliver: what delivery workers take
-- (FOR UPDATE SKIP LOCKED, then a lease), so that no two workers ever work
-- on one order and a crashed worker's order is taken again when its lease
-- runs out. A dead letter blocks its own order only.
CREATE TABLE workorder_outbox_order (
    order_no     text PRIMARY KEY,
    pending      integer NOT NULL DEFAULT 0,
    next_at      timestamptz NOT NULL DEFAULT now(),
    failures     integer NOT NULL DEFAULT 0,
    blocked      boolean NOT NULL DEFAULT false,
    lease_until  timestamptz,
    worker       text
);
CREATE INDEX workorder_outbox_order_due ON workorder_outbox_order (next_at)
    WHERE pending > 0 AND NOT blocked;

-- The city's status events as received (webhook or polling): de-duplicated
-- by event id, applied in the city's per-order sequence.
CREATE TABLE workorder_inbound (
    event_id       text PRIMARY KEY,
    city_order_no  text NOT NULL,
    order_no       text,
    city_seq       integer NOT NULL,
    kind           text NOT NULL,
    body           jsonb NOT NULL,
    state          text NOT NULL CHECK (state IN ('applied', 'waiting', 'refused', 'duplicate')),
    reason         text,
    received_at    timestamptz NOT NULL DEFAULT now(),
    applied_at     timestamptz
);
CREATE INDEX workorder_inbound_waiting ON workorder_inbound (city_order_no, city_seq)
    WHERE state = 'waiting';

CREATE TABLE workorder_nonce (
    app_key     text NOT NULL,
    nonce       text NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (app_key, nonce)
);
CREATE INDEX workorder_nonce_expiry ON workorder_nonce (expires_at);

CREATE TABLE workorder_cursor (
    adapter  text PRIMARY KEY,
    cursor   text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
