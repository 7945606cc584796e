-- By-id reads of a batch's vectors use this index (the primary key is (article_id, embedder),
-- which DuckDB does not use for a lookup by article_id alone): without it every align batch
-- scanned all stored vectors, a cost that grew with history. DuckLake keeps no indexes.
CREATE INDEX IF NOT EXISTS article_vectors_by_article ON article_vectors (article_id);
