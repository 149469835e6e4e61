-- Desktop and console sessions, so that a restarted engine (or the standby
-- taking over) honours the tokens already handed out. Only the SHA-256 of a
-- token is stored; a row is live until it expires or is revoked (logout).
CREATE TABLE api_session (
    token_digest  text PRIMARY KEY CHECK (token_digest ~ '^[0-9a-f]{64}$'),
    username      text NOT NULL REFERENCES account (username) ON DELETE CASCADE,
    role          text NOT NULL CHECK (role IN ('agent', 'supervisor', 'admin')),
    agent         text,
    phone         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz
);
CREATE INDEX api_session_expires ON api_session (expires_at);
