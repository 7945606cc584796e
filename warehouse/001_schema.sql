-- Parallax warehouse schema, version 1. Table names are a contract; columns may grow.
-- Applied by pipeline.warehouse.migrate(), which records the version in schema_version.

CREATE TABLE IF NOT EXISTS outlets (
    outlet_id   VARCHAR PRIMARY KEY,
    name        VARCHAR NOT NULL,
    lang        VARCHAR,
    feed_url    VARCHAR,
    homepage    VARCHAR,
    country     VARCHAR
);

-- Current version of each article (natural key: canonical URL -> article_id).
CREATE TABLE IF NOT EXISTS articles (
    article_id      VARCHAR PRIMARY KEY,
    outlet_id       VARCHAR NOT NULL,
    url             VARCHAR NOT NULL,          -- article_id = hash of this canonical URL
    title           VARCHAR,
    published_at    TIMESTAMPTZ,
    text            VARCHAR NOT NULL,
    text_source     VARCHAR NOT NULL,          -- 'page' or 'feed'
    text_sha256     VARCHAR NOT NULL,
    lang            VARCHAR,
    lang_confidence DOUBLE,
    lang_method     VARCHAR,
    version         INTEGER NOT NULL DEFAULT 1,
    first_seen_at   TIMESTAMPTZ,
    updated_at      TIMESTAMPTZ
);

-- Every text an article has had; an edit adds a row here instead of a duplicate article.
CREATE TABLE IF NOT EXISTS article_versions (
    article_id   VARCHAR NOT NULL,
    version      INTEGER NOT NULL,
    text_sha256  VARCHAR NOT NULL,
    title        VARCHAR,
    text         VARCHAR NOT NULL,
    seen_at      TIMESTAMPTZ,
    PRIMARY KEY (article_id, version)
);

CREATE TABLE IF NOT EXISTS segments (
    article_id  VARCHAR NOT NULL,
    seg_no      INTEGER NOT NULL,
    para_no     INTEGER NOT NULL,
    text        VARCHAR NOT NULL,
    lang        VARCHAR,
    PRIMARY KEY (article_id, seg_no)
);

CREATE TABLE IF NOT EXISTS translations (
    article_id     VARCHAR NOT NULL,
    seg_no         INTEGER NOT NULL,
    model_id       VARCHAR NOT NULL,
    text_en        VARCHAR NOT NULL,
    source_sha256  VARCHAR NOT NULL,
    engine         VARCHAR,
    flagged        VARCHAR,
    created_at     TIMESTAMPTZ,
    PRIMARY KEY (article_id, seg_no, model_id)
);

-- Translation cache by (source sentence hash, model): a repeated sentence costs nothing.
CREATE TABLE IF NOT EXISTS translation_cache (
    source_sha256  VARCHAR NOT NULL,
    model_id       VARCHAR NOT NULL,
    source_text    VARCHAR NOT NULL,
    text_en        VARCHAR NOT NULL,
    engine         VARCHAR,
    created_at     TIMESTAMPTZ,
    PRIMARY KEY (source_sha256, model_id)
);

-- Multilingual vectors of the original text, cached per article and embedder.
CREATE TABLE IF NOT EXISTS article_vectors (
    article_id   VARCHAR NOT NULL,
    embedder     VARCHAR NOT NULL,
    text_sha256  VARCHAR NOT NULL,
    vector       FLOAT[] NOT NULL,
    PRIMARY KEY (article_id, embedder)
);

CREATE TABLE IF NOT EXISTS events (
    event_id    VARCHAR PRIMARY KEY,
    label       VARCHAR,
    first_seen  TIMESTAMPTZ,
    last_seen   TIMESTAMPTZ,
    outlets     VARCHAR[],
    langs       VARCHAR[],
    size        INTEGER
);

CREATE TABLE IF NOT EXISTS event_articles (
    event_id    VARCHAR NOT NULL,
    article_id  VARCHAR NOT NULL PRIMARY KEY,   -- an article belongs to one event
    similarity  DOUBLE NOT NULL
);

-- Input a stage could not use, with the reason.
CREATE TABLE IF NOT EXISTS rejects (
    stage       VARCHAR NOT NULL,
    outlet_id   VARCHAR,
    url         VARCHAR NOT NULL,
    reason      VARCHAR NOT NULL,
    detail      VARCHAR,
    seen_at     TIMESTAMPTZ,
    PRIMARY KEY (stage, url, reason)
);

-- Feed fetch state for conditional GETs.
CREATE TABLE IF NOT EXISTS feed_state (
    outlet_id      VARCHAR PRIMARY KEY,
    feed_url       VARCHAR,
    etag           VARCHAR,
    last_modified  VARCHAR,
    fetched_at     TIMESTAMPTZ
);
