-- Which search_docs rows the BM25 index has not seen yet (pipeline/search/bm25_index.py): each
-- write of search_docs stamps its rows with the search_index_state generation it commits, in
-- the same transaction, so an index update reads only the rows past its own generation, and a
-- crash between the two loses nothing. Rows from before this column read 0: the index layout
-- that comes with it is rebuilt once from all rows.
ALTER TABLE search_docs ADD COLUMN IF NOT EXISTS generation BIGINT DEFAULT 0;
