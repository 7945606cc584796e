"""Search over the warehouse: BM25 on folded he/ar/en text, e5 vectors across languages, fused.

Entry point: :func:`pipeline.search.engine.search`; the index is kept by
:func:`pipeline.search.lexical.refresh_index` after every load.
"""
