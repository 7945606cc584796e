-- Stream state of event alignment (pipeline/align/state.py): what the next align run needs to
-- place new articles without replaying history. Rewritten whole by every align run, in one
-- transaction with nothing else; any doubt about it (settings or embedder changed, assignments
-- cleared or written by something else) makes the next run replay history and rewrite it.
CREATE TABLE IF NOT EXISTS align_state (
    id           INTEGER PRIMARY KEY CHECK (id = 1),   -- one row
    fingerprint  VARCHAR NOT NULL,   -- settings, embedder and state format it was built with
    placed       BIGINT NOT NULL,    -- rows of event_articles when it was saved
    clock_h      DOUBLE,             -- stream clock: latest publication, hours since the epoch
    n_docs       BIGINT NOT NULL,    -- articles with English text seen so far
    df_indices   BLOB NOT NULL,      -- document frequencies, hashed term -> count (int32 ...)
    df_values    BLOB NOT NULL,      -- (... float64), nonzero terms only
    saved_at     TIMESTAMPTZ
);

-- Events active in the window at clock_h, with their time span and lexical sum (sparse).
CREATE TABLE IF NOT EXISTS align_state_events (
    event_id     VARCHAR PRIMARY KEY,
    ordinal      INTEGER NOT NULL,   -- order of creation
    first_h      DOUBLE,
    last_h       DOUBLE,
    size         INTEGER NOT NULL,
    lex_indices  INTEGER[],
    lex_values   DOUBLE[]
);

-- One row per language of an active event: how many vectors, and their float64 sum.
CREATE TABLE IF NOT EXISTS align_state_groups (
    event_id     VARCHAR NOT NULL,
    lang         VARCHAR NOT NULL,
    ordinal      BIGINT NOT NULL,    -- order of creation: ties between equal scores go first
    n            INTEGER NOT NULL,
    vec_sum      DOUBLE[],
    PRIMARY KEY (event_id, lang)
);
