-- Work orders (工单), the columns the agent desktop reads today (the caller's
-- earlier orders in the screen-pop). The work-order model (workorder_sync/)
-- adds the rest of DOMAIN.md's schema, its state machine and the city sync.
CREATE TABLE work_order (
    order_no        text PRIMARY KEY,
    city_order_no   text UNIQUE,
    call_id         text,
    channel         text NOT NULL CHECK (channel IN
                        ('PHONE_12345', 'PHONE_96181', 'WEB', 'WECHAT', 'APP', 'SMS', 'EMAIL')),
    caller_number   text,
    appellant_name  text,
    appeal_type     text NOT NULL CHECK (appeal_type IN
                        ('CONSULT', 'HELP', 'COMPLAINT', 'REPORT', 'SUGGEST', 'PRAISE')),
    title           text NOT NULL,
    status          text NOT NULL DEFAULT 'DRAFT',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX work_order_caller_created ON work_order (caller_number, created_at DESC)
    WHERE caller_number IS NOT NULL;
