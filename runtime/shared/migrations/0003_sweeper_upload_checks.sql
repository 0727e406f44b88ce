-- Sweeper: when it last failed to check a stale upload's object. Rows it could not settle go
-- to the back of the next pass, so a batch of persistently failing rows cannot starve the rest.
ALTER TABLE uploads ADD COLUMN sweep_checked_at timestamptz;
