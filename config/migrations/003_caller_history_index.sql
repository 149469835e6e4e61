-- The screen-pop reads a caller's earlier calls from the event log
-- (cti.api.screenpop): every kind, so the CALL_ANSWERED-only index of
-- migration 001 does not serve it.
CREATE INDEX acd_event_caller_at ON acd_event (caller_number, at)
    WHERE caller_number IS NOT NULL;
