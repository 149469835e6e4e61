-- Accounts of the agent desktop and the supervisor console, and the audit log
-- of security-relevant actions and of every access to personal data (PIPL
-- art. 51; DOMAIN.md: leaking a caller's data voids the month's payment).

CREATE TABLE account (
    username      text PRIMARY KEY CHECK (username ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    role          text NOT NULL CHECK (role IN ('agent', 'supervisor', 'admin')),
    password_hash text NOT NULL CHECK (password_hash LIKE 'scrypt$%'),
    -- The agent extension an agent account works as; none for the others.
    agent         text,
    display_name  text NOT NULL DEFAULT '',
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'agent') = (agent IS NOT NULL))
);
CREATE UNIQUE INDEX account_agent ON account (agent) WHERE agent IS NOT NULL;

-- Append-only, like acd_event.
CREATE TABLE audit_log (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    username  text NOT NULL,          -- who acted ('' when unknown: a failed login)
    action    text NOT NULL,          -- 'login', 'login_failed', 'logout', 'agent_pause' ...
    subject   text NOT NULL DEFAULT '',  -- what it was done to (an agent, a call)
    remote    text NOT NULL DEFAULT '',  -- client address
    detail    jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_at ON audit_log (at);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
END;
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
