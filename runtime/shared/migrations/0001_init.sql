-- TranscodeX schema v1: users, sessions, API keys, uploads, jobs, job outputs.
-- gen_random_uuid() is built into PostgreSQL 13+.

CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name          text NOT NULL,
    username      text NOT NULL,
    email         text NOT NULL,
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE UNIQUE INDEX users_username_key ON users (lower(username));

-- One row per login; the access JWT and the refresh token both name it, and every
-- request checks it, so revoking a row logs that device out at once.
CREATE TABLE sessions (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    refresh_token_hash text NOT NULL,
    refresh_counter    integer NOT NULL DEFAULT 0,
    user_agent         text,
    client_ip          text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    last_used_at       timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL,
    revoked_at         timestamptz,
    revoked_reason     text
);
CREATE INDEX sessions_user_active_idx ON sessions (user_id) WHERE revoked_at IS NULL;
CREATE UNIQUE INDEX sessions_refresh_hash_key ON sessions (refresh_token_hash);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL DEFAULT 'default',
    prefix       text NOT NULL,
    key_hash     text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    expires_at   timestamptz,
    revoked_at   timestamptz
);
CREATE UNIQUE INDEX api_keys_key_hash_key ON api_keys (key_hash);
CREATE INDEX api_keys_user_active_idx ON api_keys (user_id) WHERE revoked_at IS NULL;

CREATE TABLE uploads (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    api_key_id          uuid REFERENCES api_keys (id) ON DELETE SET NULL,
    object_key          text NOT NULL,
    filename            text NOT NULL,
    content_type        text NOT NULL,
    media_type          text NOT NULL CHECK (media_type IN ('IMAGE', 'VIDEO')),
    declared_bytes      bigint NOT NULL CHECK (declared_bytes >= 0),
    size_bytes          bigint,
    multipart_upload_id text,
    status              text NOT NULL DEFAULT 'PENDING'
                        CHECK (status IN ('PENDING', 'UPLOADED', 'ABORTED', 'EXPIRED')),
    created_at          timestamptz NOT NULL DEFAULT now(),
    completed_at        timestamptz
);
CREATE UNIQUE INDEX uploads_object_key_key ON uploads (object_key);
CREATE INDEX uploads_user_created_idx ON uploads (user_id, created_at DESC, id DESC);
CREATE INDEX uploads_pending_idx ON uploads (created_at) WHERE status = 'PENDING';

CREATE TABLE jobs (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    upload_id       uuid NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    api_key_id      uuid REFERENCES api_keys (id) ON DELETE SET NULL,
    job_type        text NOT NULL CHECK (job_type IN ('IMAGE', 'VIDEO')),
    operations      jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'QUEUED'
                    CHECK (status IN ('QUEUED', 'DISPATCHED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
    progress        smallint NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    error_code      text,
    error_message   text,
    task_arn        text,
    dispatch_count  integer NOT NULL DEFAULT 0,
    idempotency_key text,
    request_hash    text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    dispatched_at   timestamptz,
    started_at      timestamptz,
    finished_at     timestamptz
);
-- Keyset pagination of a user's jobs, optionally filtered by status.
CREATE INDEX jobs_user_created_idx ON jobs (user_id, created_at DESC, id DESC);
CREATE INDEX jobs_user_status_created_idx ON jobs (user_id, status, created_at DESC, id DESC);
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_active_idx ON jobs (status, updated_at) WHERE status IN ('QUEUED', 'DISPATCHED', 'RUNNING');
CREATE INDEX jobs_task_arn_idx ON jobs (task_arn) WHERE task_arn IS NOT NULL;
CREATE INDEX jobs_upload_idx ON jobs (upload_id);

CREATE TABLE job_outputs (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    job_id           uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    object_key       text NOT NULL,
    role             text NOT NULL
                     CHECK (role IN ('hls-master', 'hls-rendition', 'hls-segment', 'mp4', 'image', 'poster')),
    bytes            bigint NOT NULL CHECK (bytes >= 0),
    mime             text NOT NULL,
    width            integer,
    height           integer,
    duration_seconds double precision,
    bitrate          bigint,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX job_outputs_job_key ON job_outputs (job_id, object_key);
