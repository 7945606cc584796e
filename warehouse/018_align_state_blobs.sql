-- The align state's sums as raw little-endian bytes (vector sums float64, lexical indices int32
-- and values float64) instead of DOUBLE[] / INTEGER[] lists: every align run reads and restores
-- the whole active window (thousands of 384-float sums), and reading lists cost twice as much
-- as bytes, a part of each batch that grows with the window. The state is a cache: the next
-- align run rebuilds it by one replay of the stored articles.
DROP TABLE IF EXISTS align_state_groups;
DROP TABLE IF EXISTS align_state_events;
DELETE FROM align_state;

-- Events active in the window at clock_h, with their time span and lexical sum (sparse).
CREATE TABLE align_state_events (
    event_id     VARCHAR PRIMARY KEY,
    ordinal      INTEGER NOT NULL,   -- order of creation
    first_h      DOUBLE,
    last_h       DOUBLE,
    size         INTEGER NOT NULL,
    lex_indices  BLOB,               -- int32 hashed terms, sorted
    lex_values   BLOB                -- float64, one per term
);

-- One row per language of an active event: how many vectors, and their float64 sum.
CREATE TABLE align_state_groups (
    event_id     VARCHAR NOT NULL,
    lang         VARCHAR NOT NULL,
    ordinal      BIGINT NOT NULL,    -- order of creation: ties between equal scores go first
    n            INTEGER NOT NULL,
    vec_sum      BLOB,               -- float64 x dimension (null: no vectors)
    PRIMARY KEY (event_id, lang)
);

-- Latest first_seen_at among the articles the state has placed: the next run looks for new
-- articles from there (and falls back to comparing all ids when their number does not add up).
ALTER TABLE align_state ADD COLUMN IF NOT EXISTS seen_through TIMESTAMPTZ;
