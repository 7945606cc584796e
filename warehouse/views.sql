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

-- Sentences of an event's articles with no link to any article of ANOTHER outlet: what only
-- this outlet says. Events covered by one outlet have no links at all and are left out.
CREATE OR REPLACE VIEW unique_statements AS
WITH members AS (
    SELECT ea.event_id, ea.article_id, a.outlet_id
    FROM event_articles ea JOIN articles a USING (article_id)
),
multi AS (
    SELECT event_id FROM members GROUP BY event_id HAVING count(DISTINCT outlet_id) > 1
),
linked AS (
    SELECT article_a AS article_id, seg_a AS seg_no FROM segment_links
    UNION
    SELECT article_b, seg_b FROM segment_links
),
en AS (
    SELECT article_id, seg_no, arg_max(text_en, created_at) AS english
    FROM translations GROUP BY article_id, seg_no
)
SELECT m.event_id, m.outlet_id, s.lang, s.article_id, s.seg_no,
       s.text AS original,
       CASE WHEN s.lang = 'en' THEN coalesce(en.english, s.text) ELSE en.english END AS english
FROM members m
JOIN multi USING (event_id)
JOIN segments s ON s.article_id = m.article_id
LEFT JOIN en ON en.article_id = s.article_id AND en.seg_no = s.seg_no
ANTI JOIN linked l ON l.article_id = s.article_id AND l.seg_no = s.seg_no;

-- Divergences with outlet names and both original sentences, for reading.
CREATE OR REPLACE VIEW event_divergences AS
SELECT d.event_id, e.label, d.kind, d.unit,
       oa.name AS outlet_a, aa.outlet_id AS outlet_id_a, aa.lang AS lang_a,
       d.span_a, d.value_a,
       ob.name AS outlet_b, ab.outlet_id AS outlet_id_b, ab.lang AS lang_b,
       d.span_b, d.value_b,
       sa.text AS original_a, sb.text AS original_b,
       d.english_a, d.english_b,
       d.article_a, d.seg_a, d.article_b, d.seg_b
FROM divergences d
LEFT JOIN events e USING (event_id)
JOIN articles aa ON aa.article_id = d.article_a
JOIN articles ab ON ab.article_id = d.article_b
LEFT JOIN outlets oa ON oa.outlet_id = aa.outlet_id
LEFT JOIN outlets ob ON ob.outlet_id = ab.outlet_id
LEFT JOIN segments sa ON sa.article_id = d.article_a AND sa.seg_no = d.seg_a
LEFT JOIN segments sb ON sb.article_id = d.article_b AND sb.seg_no = d.seg_b;

-- One row per outlet for `parallax status`: last success and failure (with its reason), when a
-- 429/503 lets it be fetched again, items seen, articles stored, rejects by reason, and
-- sentences still waiting for a translation.
CREATE OR REPLACE VIEW outlet_status AS
WITH known AS (
    SELECT outlet_id FROM outlets
    UNION SELECT outlet_id FROM feed_state
    UNION SELECT DISTINCT outlet_id FROM rejects WHERE outlet_id IS NOT NULL
),
stored AS (SELECT outlet_id, count(*) AS articles FROM articles GROUP BY outlet_id),
by_reason AS (
    SELECT outlet_id, reason, count(*) AS n FROM rejects GROUP BY outlet_id, reason
),
rejected AS (
    SELECT outlet_id, sum(n) AS rejects,
           string_agg(reason || '=' || n, ', ' ORDER BY n DESC, reason) AS rejects_by_reason
    FROM by_reason GROUP BY outlet_id
),
pending AS (
    SELECT a.outlet_id, count(*) AS segments
    FROM pending_translations p JOIN articles a USING (article_id)
    GROUP BY a.outlet_id
)
SELECT k.outlet_id, o.name,
       f.last_success_at, f.last_failure_at, f.last_failure_reason, f.retry_after,
       f.fetched_at AS last_fetch_at,
       coalesce(f.items_seen, 0) AS items_seen,
       coalesce(s.articles, 0) AS articles_stored,
       coalesce(r.rejects, 0) AS rejects,
       coalesce(r.rejects_by_reason, '') AS rejects_by_reason,
       coalesce(p.segments, 0) AS pending_translations
FROM known k
LEFT JOIN outlets o USING (outlet_id)
LEFT JOIN feed_state f USING (outlet_id)
LEFT JOIN stored s USING (outlet_id)
LEFT JOIN rejected r USING (outlet_id)
LEFT JOIN pending p USING (outlet_id);
