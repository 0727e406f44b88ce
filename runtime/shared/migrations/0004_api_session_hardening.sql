-- API: sessions and logins that hold up against real browsers and parallel attackers.

-- Refresh rotation with a grace window: the token rotated away last is remembered, so a second
-- request that raced the rotation (two tabs, two calls after an idle page) is answered with the
-- current pair instead of being taken for theft. The current refresh token is a pure function of
-- (user, session, refresh_counter, refresh_issued_at, expires_at), so it can be handed out again
-- without being stored.
ALTER TABLE sessions
    ADD COLUMN previous_refresh_hash text,
    ADD COLUMN rotated_at            timestamptz,
    ADD COLUMN refresh_issued_at     bigint;

-- Login attempts are written before the password is checked (a pending failure, deleted when the
-- password proves right), so parallel guesses count each other. Limits are per (email, address).
CREATE INDEX login_failures_email_ip_idx ON login_failures (email, client_ip, created_at DESC);

-- Sign-ups per client address, to throttle account farming and probing.
CREATE TABLE signup_attempts (
    id         bigserial PRIMARY KEY,
    client_ip  text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX signup_attempts_ip_idx ON signup_attempts (client_ip, created_at DESC);
