-- Reproducibility of each translation row: the model revision and the decoding options
-- (JSON: engine, num_beams, length_penalty, max_new_tokens, compute_type, retry, cached).
ALTER TABLE translations ADD COLUMN IF NOT EXISTS revision VARCHAR;
ALTER TABLE translations ADD COLUMN IF NOT EXISTS decoding VARCHAR;
