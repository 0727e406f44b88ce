-- Account deletion: the user's media in both buckets is deleted asynchronously by the sweeper.
-- A row is written in the transaction that deletes the user (so sessions and keys end at once
-- and the request is never lost); the sweeper claims due rows, deletes the user's prefixes,
-- and on a failure records it and retries with backoff. No foreign key: the user row is gone.
CREATE TABLE media_deletions (
    id              bigserial PRIMARY KEY,
    user_id         uuid NOT NULL,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    objects_deleted bigint NOT NULL DEFAULT 0,
    last_error      text,
    finished_at     timestamptz
);
CREATE INDEX media_deletions_due_idx ON media_deletions (next_attempt_at) WHERE finished_at IS NULL;
