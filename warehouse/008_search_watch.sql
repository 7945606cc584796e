-- Search, watchlists and alerts (issue 12).

-- One row per segment as the full-text index reads it: folded original and English, with
-- proclitic-stripped forms added (pipeline/search/normalise.py). Kept incrementally: a row is
-- rewritten only when its segment's text or English changed (digest); the fts index
-- (schema fts_main_search_docs) is rebuilt from this table when any row changed.
CREATE TABLE IF NOT EXISTS search_docs (
    doc_id         VARCHAR PRIMARY KEY,          -- article_id || ':' || seg_no
    article_id     VARCHAR NOT NULL,
    seg_no         INTEGER NOT NULL,
    lang           VARCHAR,
    original_terms VARCHAR NOT NULL,
    english_terms  VARCHAR NOT NULL,             -- '' for English segments and pending ones
    digest         VARCHAR NOT NULL              -- sha256 of original + English as indexed
);

-- State of the fts index: the search_docs change counter it was built at.
CREATE TABLE IF NOT EXISTS search_index_state (
    name        VARCHAR PRIMARY KEY,
    generation  BIGINT NOT NULL,
    built_gen   BIGINT NOT NULL,
    built_at    TIMESTAMPTZ,
    docs        BIGINT
);

-- A saved query that alerts on new matching coverage.
CREATE TABLE IF NOT EXISTS watches (
    name         VARCHAR PRIMARY KEY,
    query        VARCHAR NOT NULL,
    mode         VARCHAR NOT NULL DEFAULT 'hybrid',  -- hybrid, lexical, semantic
    langs        VARCHAR[],                          -- document languages; NULL: all
    min_outlets  INTEGER NOT NULL DEFAULT 1,         -- outlets of the event that must match
    min_score    DOUBLE,                             -- semantic cosine floor; NULL: default
    notify       VARCHAR[] NOT NULL,                 -- 'webhook:URL', 'email:ADDR', 'file:PATH'
    created_at   TIMESTAMPTZ NOT NULL                -- only coverage first seen after it alerts
);

-- The alert ledger: one row per (watch, article), ever. Inserted in the transaction that
-- decides the match, so a re-run, retry or backfill finds the row and alerts nothing new.
CREATE TABLE IF NOT EXISTS alerts (
    watch        VARCHAR NOT NULL,
    article_id   VARCHAR NOT NULL,
    event_id     VARCHAR,
    seg_no       INTEGER,
    score        DOUBLE,
    payload      VARCHAR NOT NULL,                   -- JSON: event, outlets, langs, sentence
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (watch, article_id)
);

-- Delivery state per alert and target, written with the alert; 'pending' until a send
-- succeeds, retried on every later run.
CREATE TABLE IF NOT EXISTS alert_deliveries (
    watch        VARCHAR NOT NULL,
    article_id   VARCHAR NOT NULL,
    target       VARCHAR NOT NULL,
    status       VARCHAR NOT NULL CHECK (status IN ('pending', 'sent')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   VARCHAR,
    last_attempt TIMESTAMPTZ,
    sent_at      TIMESTAMPTZ,
    PRIMARY KEY (watch, article_id, target)
);
