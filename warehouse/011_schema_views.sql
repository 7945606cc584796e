-- The digest of views.sql the views were last created from: migrate() recreates them only when
-- the file changed, so opening the warehouse writes nothing (concurrent DuckLake writers open it
-- at once; a DuckDB file simply skips the work).
CREATE TABLE IF NOT EXISTS schema_views (
    sha256      VARCHAR NOT NULL,
    applied_at  TIMESTAMPTZ
);
