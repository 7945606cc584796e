-- Views are recreated on every migrate(); they hold no data of their own.

-- Each sentence beside its English: the latest translation, or the original for English.
CREATE OR REPLACE VIEW parallel_text AS
WITH en AS (
    SELECT article_id, seg_no,
           arg_max(text_en, created_at) AS english,
           arg_max(model_id, created_at) AS model_id,
           arg_max(flagged, created_at) AS flagged
    FROM translations
    GROUP BY article_id, seg_no
)
SELECT o.name AS outlet, a.outlet_id, s.lang, s.article_id, s.seg_no, s.para_no,
       s.text AS original, en.english, en.model_id, en.flagged,
       a.title, a.url, a.published_at
FROM segments s
JOIN articles a USING (article_id)
LEFT JOIN outlets o ON o.outlet_id = a.outlet_id
LEFT JOIN en USING (article_id, seg_no);

-- Segments still waiting for a model (he/ar without a translation row).
CREATE OR REPLACE VIEW pending_translations AS
SELECT s.article_id, s.seg_no, s.lang, s.text
FROM segments s
ANTI JOIN translations t ON s.article_id = t.article_id AND s.seg_no = t.seg_no
WHERE s.lang IN ('he', 'ar');

-- Who covered an event, in which language, how much and when first.
CREATE OR REPLACE VIEW event_coverage AS
SELECT ea.event_id, e.label, a.outlet_id, a.lang,
       count(*) AS articles,
       min(a.published_at) AS first_seen
FROM event_articles ea
JOIN events e USING (event_id)
JOIN articles a USING (article_id)
GROUP BY ALL;
