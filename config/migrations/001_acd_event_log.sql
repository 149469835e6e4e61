-- 001: the append-only ACD event log.
--
-- One row per queue, agent and call event the engine acted on (the row
-- contract is acd/log_events.py). Every KPI is recomputable from these rows
-- alone (acd/kpi_sql.py), so rows are never changed or removed in place.
--
-- Retention / archiving (not done yet, planned): convert acd_event into a
-- table range-partitioned by month on "at"; archiving a month is then
-- ALTER TABLE ... DETACH PARTITION, pg_dump of the detached table to cold
-- storage, DROP TABLE. DETACH and DROP do not fire the row triggers below,
-- so the log stays append-only for every other path. PostgreSQL requires a
-- partitioned table's unique keys to include the partition key, so that
-- migration will make the idempotency key UNIQUE (dedup_key, at): a retried
-- write repeats "at" exactly (it is the same LogEvent), so exactly-once holds.

CREATE TABLE acd_event (
    id            bigserial PRIMARY KEY,
    at            timestamptz NOT NULL,
    kind          text NOT NULL CONSTRAINT acd_event_kind_known CHECK (kind IN (
        -- call events (acd.log_events.CALL_KINDS)
        'CALL_ARRIVED', 'CALL_QUEUED', 'CALL_REQUEUED', 'CALL_OFFERED_TO_AGENT',
        'AGENT_RINGING', 'CALL_ANSWERED', 'AGENT_CONNECTED', 'AGENT_NO_ANSWER',
        'CALL_TRANSFERRED', 'CALL_ABANDONED', 'CALL_OVERFLOWED', 'CALL_FALLBACK',
        'CALL_ENDED', 'CALL_LOST',
        -- agent events (acd.log_events.AGENT_KINDS)
        'AGENT_LOGIN', 'AGENT_LOGOUT', 'AGENT_PAUSED', 'AGENT_RESUMED', 'AGENT_STATE',
        'WRAPUP_ENDED'
    )),
    call_id       text,
    line          text,
    queue         text,
    skill         text,
    agent         text,
    caller_number text,
    wait_s        double precision,
    talk_s        double precision,
    wrap_s        double precision,
    data          jsonb NOT NULL DEFAULT '{}'::jsonb,
    seq           integer NOT NULL DEFAULT 0,
    -- LogEvent.dedup_key: a batch retried after a lost acknowledgement is
    -- inserted with ON CONFLICT (dedup_key) DO NOTHING and stored once.
    dedup_key     text NOT NULL CONSTRAINT acd_event_dedup_key_unique UNIQUE,
    engine_id     text NOT NULL,
    written_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT acd_event_has_subject CHECK (call_id IS NOT NULL OR agent IS NOT NULL)
);

COMMENT ON TABLE acd_event IS
    'Append-only ACD event log (acd/log_events.py); UPDATE, DELETE and TRUNCATE are rejected';

CREATE INDEX acd_event_at ON acd_event (at);
CREATE INDEX acd_event_kind_at ON acd_event (kind, at);
-- Repeat-caller routing after a restart (acd.event_log.load_repeat_callers).
CREATE INDEX acd_event_answered_caller_at ON acd_event (caller_number, at)
    WHERE kind = 'CALL_ANSWERED';
-- Agent state after a restart (acd.event_log.load_agent_states) and per-agent reports.
CREATE INDEX acd_event_agent_at ON acd_event (agent, at) WHERE agent IS NOT NULL;
-- The KPI recompute joins a call's rows (first queue entry, outcome, end, wrap-up).
CREATE INDEX acd_event_call_id_at ON acd_event (call_id, at) WHERE call_id IS NOT NULL;

-- Append-only, enforced in the database so that no code path (nor a hurried
-- operator) can rewrite history. Only a superuser setting
-- session_replication_role = replica bypasses it, which is deliberate.
CREATE FUNCTION acd_event_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'acd_event is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'archive old months by detaching partitions (see migration 001)';
END;
$$;

CREATE TRIGGER acd_event_no_update_delete
    BEFORE UPDATE OR DELETE ON acd_event
    FOR EACH ROW EXECUTE FUNCTION acd_event_reject_change();

CREATE TRIGGER acd_event_no_truncate
    BEFORE TRUNCATE ON acd_event
    FOR EACH STATEMENT EXECUTE FUNCTION acd_event_reject_change();

-- Application roles get INSERT and SELECT only (grant those to the engine's
-- role when it is not the owner); nobody is granted UPDATE/DELETE/TRUNCATE.
REVOKE ALL ON acd_event FROM PUBLIC;
REVOKE ALL ON SEQUENCE acd_event_id_seq FROM PUBLIC;
