-- API: recent failed logins, so password guessing is slowed per account and per client address.
-- Rows older than a day are pruned by the API as it writes new ones.
CREATE TABLE login_failures (
    id         bigserial PRIMARY KEY,
    email      text NOT NULL,        -- lower-cased, as typed (the account may not exist)
    client_ip  text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_email_idx ON login_failures (email, created_at DESC);
CREATE INDEX login_failures_ip_idx ON login_failures (client_ip, created_at DESC) WHERE client_ip IS NOT NULL;
