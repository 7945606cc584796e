-- By-id reads of one align batch: its articles' segments and translations (English text), and
-- the stored members of the events it touched. Their primary keys start with the same column
-- but DuckDB does not use a composite key for a lookup by its first column alone, so each read
-- scanned the whole table, a cost that grew with history (017 did the same for vectors).
-- DuckLake keeps no indexes.
CREATE INDEX IF NOT EXISTS segments_by_article ON segments (article_id);
CREATE INDEX IF NOT EXISTS translations_by_article ON translations (article_id);
CREATE INDEX IF NOT EXISTS event_articles_by_event ON event_articles (event_id);
