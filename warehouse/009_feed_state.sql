-- What each outlet's last feed fetch left to remember (written by the ingest load since 009):
-- the body hash recognises an unchanged feed whose server ignores conditional GET, retry_after
-- is when a 429/503 allows the next fetch, and the rest is what `parallax status` shows.
ALTER TABLE feed_state ADD COLUMN IF NOT EXISTS body_sha256 VARCHAR;
ALTER TABLE feed_state ADD COLUMN IF NOT EXISTS retry_after TIMESTAMPTZ;
ALTER TABLE feed_state ADD COLUMN IF NOT EXISTS last_success_at TIMESTAMPTZ;
ALTER TABLE feed_state ADD COLUMN IF NOT EXISTS last_failure_at TIMESTAMPTZ;
ALTER TABLE feed_state ADD COLUMN IF NOT EXISTS last_failure_reason VARCHAR;
ALTER TABLE feed_state ADD COLUMN IF NOT EXISTS items_seen BIGINT DEFAULT 0;
