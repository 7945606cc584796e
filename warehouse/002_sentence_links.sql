-- Sentence links and divergences inside an event, and the sentence vectors they are computed on.
-- Written by pipeline.align.sentences.link_events (delete + insert per event, one transaction).

-- Two sentences of articles from different outlets of one event that say the same thing.
-- Stored once per pair, with article_a < article_b.
CREATE TABLE IF NOT EXISTS segment_links (
    event_id   VARCHAR NOT NULL,
    article_a  VARCHAR NOT NULL,
    seg_a      INTEGER NOT NULL,
    article_b  VARCHAR NOT NULL,
    seg_b      INTEGER NOT NULL,
    score      DOUBLE NOT NULL,
    method     VARCHAR NOT NULL,             -- '1:1' or '1:n'
    PRIMARY KEY (article_a, seg_a, article_b, seg_b),
    CHECK (article_a < article_b)
);

-- Two outlets state different figures for the same thing (rule: pipeline/align/divergences.py).
CREATE TABLE IF NOT EXISTS divergences (
    event_id   VARCHAR NOT NULL,
    article_a  VARCHAR NOT NULL,
    seg_a      INTEGER NOT NULL,
    article_b  VARCHAR NOT NULL,
    seg_b      INTEGER NOT NULL,
    kind       VARCHAR NOT NULL CHECK (kind IN
                   ('duration', 'count', 'percent', 'date', 'money', 'number', 'name')),
    span_a     VARCHAR NOT NULL,             -- the value as written in each original
    span_b     VARCHAR NOT NULL,
    value_a    DOUBLE NOT NULL,              -- normalised (durations in days)
    value_b    DOUBLE NOT NULL,
    unit       VARCHAR NOT NULL,
    english_a  VARCHAR,
    english_b  VARCHAR,
    PRIMARY KEY (article_a, seg_a, article_b, seg_b, kind, value_a, value_b)
);

-- Sentence vectors of the original text, cached per segment and embedder.
CREATE TABLE IF NOT EXISTS segment_vectors (
    article_id   VARCHAR NOT NULL,
    seg_no       INTEGER NOT NULL,
    embedder     VARCHAR NOT NULL,
    text_sha256  VARCHAR NOT NULL,
    vector       FLOAT[] NOT NULL,
    PRIMARY KEY (article_id, seg_no, embedder)
);
