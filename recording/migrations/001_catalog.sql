-- The recordings' catalog: one row per answered call, from its first answer
-- to the caller's hangup; the job queue of the post-processing workers; the
-- transcripts per direction. Personal data (the caller's number, the
-- transcript) is read only through the recording feature, which masks by
-- role and audits.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE recording (
    id              bigserial PRIMARY KEY,
    call_id         text NOT NULL UNIQUE,
    linkedid        text NOT NULL,
    line            text,
    queue           text,
    caller_number   text NOT NULL DEFAULT '',
    agents          text[] NOT NULL DEFAULT '{}',
    agent_spans     jsonb NOT NULL DEFAULT '[]',   -- [{"agent", "from", "to"}] (epoch s)
    started_at      timestamptz NOT NULL,              -- the first answer
    file_started_at timestamptz,                       -- MixMonitor's start (cut before answer)
    ended_at        timestamptz,
    duration_s      double precision,              -- of the stored audio
    work_order_ids  text[] NOT NULL DEFAULT '{}',
    state           text NOT NULL DEFAULT 'recording'
                    CHECK (state IN ('recording', 'closed', 'stored', 'failed')),
    raw_path        text NOT NULL,
    legs_paths      text[] NOT NULL DEFAULT '{}',  -- caller, agents (raw)
    repaired        boolean NOT NULL DEFAULT false,
    storage_key     text,
    legs_key        text,
    codec           text,
    size_bytes      bigint,
    sha256          text CHECK (sha256 IS NULL OR sha256 ~ '^[0-9a-f]{64}$'),
    legs_sha256     text CHECK (legs_sha256 IS NULL OR legs_sha256 ~ '^[0-9a-f]{64}$'),
    retain_until    timestamptz NOT NULL,
    legal_hold      boolean NOT NULL DEFAULT false,
    transcript_state text NOT NULL DEFAULT 'none'
                    CHECK (transcript_state IN ('none', 'pending', 'done', 'failed', 'disabled')),
    checks          jsonb,
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recording_started ON recording (started_at);
CREATE INDEX recording_caller ON recording (caller_number, started_at);
CREATE INDEX recording_agents ON recording USING gin (agents);
CREATE INDEX recording_work_orders ON recording USING gin (work_order_ids);
CREATE INDEX recording_retention ON recording (retain_until) WHERE NOT legal_hold;

-- Work for the post-processing workers (any number, on any machine): taken
-- with FOR UPDATE SKIP LOCKED under a lease; a job whose lease ran out (its
-- worker died) is taken again.
CREATE TABLE recording_job (
    id            bigserial PRIMARY KEY,
    recording_id  bigint NOT NULL REFERENCES recording (id) ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('process', 'transcribe')),
    state         text NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'running', 'failed')),
    attempts      integer NOT NULL DEFAULT 0,
    not_before    timestamptz NOT NULL DEFAULT now(),
    lease_until   timestamptz,
    worker        text,
    error_kind    text,      -- store_full | store_unavailable | failed
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (recording_id, kind)
);
CREATE INDEX recording_job_due ON recording_job (not_before) WHERE state = 'pending';
CREATE INDEX recording_job_lease ON recording_job (lease_until) WHERE state = 'running';

CREATE TABLE recording_transcript (
    recording_id  bigint NOT NULL REFERENCES recording (id) ON DELETE CASCADE,
    direction     text NOT NULL CHECK (direction IN ('caller', 'agents')),
    text          text NOT NULL,
    words         jsonb NOT NULL,   -- [{"w", "start", "end", "conf"}]
    model         text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (recording_id, direction)
);
CREATE INDEX recording_transcript_text ON recording_transcript USING gin (text gin_trgm_ops);
