-- What each event's sentence links were computed from (pipeline/align/sentences.py): a hash of
-- its members, their texts, segments and usable English, and of the link settings. A run
-- relinks only events whose inputs hash differently, so its cost follows what changed, not
-- history. Written in the same transaction as the event's links and divergences.
CREATE TABLE IF NOT EXISTS link_state (
    event_id     VARCHAR PRIMARY KEY,
    fingerprint  VARCHAR NOT NULL
);
