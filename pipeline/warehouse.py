"""The DuckDB warehouse: one connection factory, schema migrations, idempotent loads.

Every write goes through a function here, keyed on natural keys, one transaction per batch,
so running a stage twice leaves the warehouse as after one run. The schema itself lives in
`warehouse/*.sql`; this module only applies it. The warehouse is a DuckDB file or a DuckLake
(`pipeline.warehouse_backends`); upserts are MERGE statements on the natural key, which both
run with the same result, and a load whose DuckLake commit loses a conflict is re-run.
"""

from __future__ import annotations

import itertools
import logging
import random
import re
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import astuple, dataclass, fields, replace
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import faults
from pipeline import warehouse_backends as backends
from pipeline.records import (
    Article,
    Event,
    EventArticle,
    FeedState,
    Outlet,
    Reject,
    Segment,
    Translation,
)
from pipeline.settings import Settings

if TYPE_CHECKING:
    import duckdb

    from pipeline.align.sentences import LinkOutput
    from pipeline.translate.cache import CacheRow

log = logging.getLogger(__name__)

MIGRATION_RE = re.compile(r"^(\d{3})_[\w-]+\.sql$")
VIEWS_FILE = "views.sql"


class WarehouseLocked(RuntimeError):
    """Another process holds the DuckDB file's write lock and retries ran out."""


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set lock" in text)


_HOLDER = re.compile(r"held in (?P<prog>.+?) \(PID (?P<pid>\d+)\)")


def lock_holder(message: str) -> str:
    """Who holds the file, as DuckDB's lock error names it ("python3.11 (PID 123)"), or ""."""
    match = _HOLDER.search(message)
    if not match:
        return ""
    return f"{Path(match['prog']).name} (PID {match['pid']})"


def connect(
    settings: Settings,
    *,
    read_only: bool = False,
    lock_retries: int | None = None,
    lock_backoff_s: float | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse, retrying with backoff while another process holds the file lock.

    Waits up to `settings.lock.wait_s` in all (or `lock_retries` retries when given), each
    retry logged with the holder DuckDB names, so an analyst's long query delays a load
    instead of failing it.
    """
    import duckdb

    backend = backends.backend_for(settings)
    target = backend.target
    lock = settings.lock
    delay = lock.backoff_s if lock_backoff_s is None else lock_backoff_s
    started = time.monotonic()
    attempt = 0
    while True:
        try:
            con = backends.open_connection(backend, settings, read_only=read_only)
            break
        except duckdb.IOException as exc:
            if not _is_lock_error(exc):
                raise
            attempt += 1
            waited = time.monotonic() - started
            out_of_time = waited + delay > lock.wait_s if lock_retries is None else False
            if out_of_time or (lock_retries is not None and attempt > lock_retries):
                raise WarehouseLocked(
                    f"{target} is still locked after {waited:.1f}s "
                    f"(held by {lock_holder(str(exc)) or 'another process'}): {exc}"
                ) from exc
            log.warning(
                "warehouse %s is locked by %s; waiting %.2fs (retry %d, %.1fs waited so far)",
                target,
                lock_holder(str(exc)) or "another process",
                delay,
                attempt,
                waited,
            )
            time.sleep(delay * (1 + random.random() / 4))
            delay = min(delay * 2, lock.max_backoff_s)
    if attempt:
        log.info("warehouse %s opened after %.2fs of waiting", target, time.monotonic() - started)
    con.execute("SET TimeZone = 'UTC'")
    return con


def exists(settings: Settings) -> bool:
    """Whether there is a warehouse to read: the DuckDB file exists, or (a DuckLake, whose
    catalog lives in PostgreSQL) it is configured; ':memory:' always."""
    if settings.warehouse == ":memory:" or backends.backend_for(settings).is_lake:
        return True
    return Path(settings.warehouse).exists()


@dataclass(frozen=True)
class Hold:
    """How long one connection of this process held the warehouse file."""

    purpose: str
    read_only: bool
    seconds: float


# The holds of this process, newest last (bounded): benches and tests read the longest.
HOLDS: deque[Hold] = deque(maxlen=10_000)


def longest_hold(*, writes_only: bool = True) -> Hold | None:
    """The longest hold recorded in this process (write connections only by default)."""
    holds = [h for h in HOLDS if not (writes_only and h.read_only)]
    return max(holds, key=lambda h: h.seconds, default=None)


@contextmanager
def open_warehouse(
    settings: Settings, *, read_only: bool = False, purpose: str = ""
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Connect and migrate; the file is held only for the `with` block, whose length is logged
    and recorded in HOLDS (DuckDB locks the whole file for as long as a connection is open)."""
    con = connect(settings, read_only=read_only)
    t0 = time.perf_counter()
    try:
        if not read_only:
            _migrate_retrying(con, settings.schema_dir)
        yield con
    finally:
        con.close()
        held = time.perf_counter() - t0
        HOLDS.append(Hold(purpose or "?", read_only, held))
        log.debug(
            "warehouse held %.3fs (%s%s)", held, purpose or "?", ", read-only" if read_only else ""
        )


_ID_TABLES = itertools.count()


@contextmanager
def id_table(con: duckdb.DuckDBPyConnection, ids: Sequence[str]) -> Iterator[str]:
    """A list of ids as a registered Arrow table (one column, `id`), to join against; yields
    its name (unique, so these nest). Not a list parameter: DuckDB converts those value by
    value, trying (and failing, without pandas) an import for each one: ~1 ms a value."""
    import pyarrow as pa

    name = f"_parallax_ids_{next(_ID_TABLES)}"
    con.register(name, pa.table({"id": pa.array(list(ids), type=pa.string())}))
    try:
        yield name
    finally:
        con.unregister(name)


# DuckDB answers `column IN (<literals>)` from the column's ART index (its primary key, or an
# index such as migration 017's) when that is the only predicate on the table and fewer than
# `index_scan_max_count` rows match; a join or semi-join against an id list, or an extra
# predicate, scans the whole table. At 100,000 stored articles a batch's by-id reads went from
# ~250 ms (scan) to ~30 ms (index) each.
INDEX_LOOKUP_MAX = 2048


@contextmanager
def ids_in(con: duckdb.DuckDBPyConnection, column: str, ids: Sequence[str]) -> Iterator[str]:
    """A predicate `column IN (…)` for a list of ids, to be the only predicate on its table:
    escaped literals (served from the column's index) up to INDEX_LOOKUP_MAX ids, else a
    semi-join against an `id_table`."""
    if 0 < len(ids) <= INDEX_LOOKUP_MAX:
        literals = ", ".join("'" + str(i).replace("'", "''") + "'" for i in ids)
        yield f"{column} IN ({literals})"
        return
    with id_table(con, ids) as name:
        yield f"{column} IN (SELECT id FROM {name})"


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
        faults.point("transaction.before_commit")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
    faults.point("transaction.after_commit")


def _is_lake(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(
        con.execute("SELECT current_database() = ?", [backends.LAKE_ALIAS]).fetchall()[0][0]
    )


def _migration_files(schema_dir: Path) -> list[Path]:
    return sorted(p for p in schema_dir.glob("*.sql") if MIGRATION_RE.match(p.name))


def migrate(con: duckdb.DuckDBPyConnection, schema_dir: Path) -> int:
    """Apply `NNN_name.sql` files not yet recorded, then (re)create the views when views.sql
    changed since they were last created (so concurrent DuckLake writers opening the warehouse
    change no catalog entry). Returns the version."""
    lake = _is_lake(con)
    ddl = backends.ducklake_ddl if lake else (lambda sql: sql)
    con.execute(
        ddl(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            "version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMPTZ)"
        )
    )
    applied = {r[0] for r in con.execute("SELECT version FROM schema_version").fetchall()}
    for path in _migration_files(schema_dir):
        version = int(path.name[:3])
        if version in applied:
            continue
        with transaction(con):
            con.execute(ddl(path.read_text(encoding="utf-8")))
            con.execute(
                "INSERT INTO schema_version VALUES (?, ?, ?)",
                [version, path.name, datetime.now(UTC)],
            )
        log.info("applied migration %s", path.name)
    views = schema_dir / VIEWS_FILE
    if views.is_file():
        text = views.read_text(encoding="utf-8")
        digest = sha256(text.encode("utf-8")).hexdigest()
        tracked = bool(_column_types(con, "schema_views"))  # 011 applied (not in older schemas)
        current = con.execute("SELECT sha256 FROM schema_views").fetchall() if tracked else []
        if [r[0] for r in current] != [digest]:
            with transaction(con):
                con.execute(text)
                if tracked:
                    con.execute("DELETE FROM schema_views")
                    con.execute(
                        "INSERT INTO schema_views VALUES (?, ?)", [digest, datetime.now(UTC)]
                    )
    row = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()
    return int(row[0][0])


@backends.retry_conflicts()
def _migrate_retrying(con: duckdb.DuckDBPyConnection, schema_dir: Path) -> int:
    return migrate(con, schema_dir)


def natural_key(table: str) -> tuple[str, ...]:
    """The natural key of `table` (its PRIMARY KEY in warehouse/*.sql; DuckLake stores none)."""
    from pipeline.workspace import resource_dir

    schema_dir = resource_dir("schema")  # the checkout's warehouse/, or the installed copy
    return backends.natural_keys(schema_dir, _migration_files(schema_dir)).get(table, ())


def _column_types(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    return dict(
        con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? "
            "AND database_name = current_database() AND schema_name = current_schema()",
            [table],
        ).fetchall()
    )


def merge_from(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: Sequence[str],
    source: str,
    params: Sequence[Any] | None = None,
    *,
    update: bool = True,
) -> None:
    """Upsert the rows of the query `source` into `table` by its natural key: an existing key's
    other columns are replaced (`update=False`: kept), a new key is inserted. The same rows on
    a DuckDB file and on a DuckLake."""
    sql = backends.merge_sql(table, list(columns), natural_key(table), source, update=update)
    con.execute(sql, list(params) if params is not None else None)


def _rows(records: Iterable[Any]) -> list[tuple[Any, ...]]:
    return [astuple(r) for r in records]


def _columns(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


def _insert(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    *,
    mode: str = "OR REPLACE",
) -> None:
    """One set-based upsert over column lists. Not executemany: inside a transaction DuckDB keeps
    each row-statement's state until commit (~250 KB a row), so large loads grew without bound.

    `mode` "OR REPLACE" replaces a row with the same natural key, "OR IGNORE" keeps it, ""
    appends. One row per key (the last given), as one statement may not hit a key twice."""
    if mode not in {"OR REPLACE", "OR IGNORE", ""}:
        raise ValueError(f"unknown insert mode {mode!r}")
    keys = natural_key(table) if mode else ()
    if keys:
        pos = [list(columns).index(k) for k in keys]
        unique = {tuple(_hashable(r[i]) for i in pos): r for r in rows}
    else:  # identical rows once (lists, e.g. an event's outlets, compared as tuples)
        unique = {tuple(_hashable(v) for v in r): r for r in rows}
    rows = list(unique.values())
    if not rows:
        return
    types = _column_types(con, table)
    # Through Arrow, not list parameters: DuckDB converts a Python list parameter value by
    # value, trying (and failing, without pandas) an import for each one: ~1 ms a value.
    import pyarrow as pa

    data = pa.table({c: list(v) for c, v in zip(columns, zip(*rows, strict=True), strict=True)})
    source = "SELECT " + ", ".join(f'CAST("{c}" AS {types[c]}) AS "{c}"' for c in columns)
    source += f" FROM {_INSERT_IN}"
    con.register(_INSERT_IN, data)
    try:
        if mode:
            merge_from(con, table, columns, source, update=mode == "OR REPLACE")
        else:
            con.execute(f"INSERT INTO {table} ({', '.join(columns)}) {source}")
    finally:
        con.unregister(_INSERT_IN)


_INSERT_IN = "_parallax_insert_in"


def upsert(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    *,
    keep_existing: bool = False,
) -> None:
    """Upsert `rows` by `table`'s natural key in the caller's transaction (both backends)."""
    _insert(con, table, columns, rows, mode="OR IGNORE" if keep_existing else "OR REPLACE")


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


# ---------------------------------------------------------------- loads


@backends.writes("outlets")
def upsert_outlets(con: duckdb.DuckDBPyConnection, outlets: Sequence[Outlet]) -> None:
    rows = [
        (o.outlet_id, o.name, o.lang, o.feed_url, o.homepage, o.country, o.group) for o in outlets
    ]
    columns = ["outlet_id", "name", "lang", "feed_url", "homepage", "country", "outlet_group"]
    with transaction(con):
        _insert(con, "outlets", columns, rows)


@dataclass(frozen=True)
class ArticleLoad:
    new: list[str]  # article ids inserted
    edited: list[str]  # article ids whose text changed (new version)
    unchanged: int
    duplicates: int  # same outlet, same text under another URL


@backends.writes("articles", "article_versions", "segments", "translations")
def load_articles(
    con: duckdb.DuckDBPyConnection, articles: Sequence[Article], *, seen_at: datetime | None = None
) -> ArticleLoad:
    """Insert new articles, version edited ones, skip unchanged ones and same-outlet duplicates.

    An edited article (same URL, new text hash) keeps its earlier text in `article_versions`;
    its segments and translations are dropped so the later stages re-derive them.
    """
    from pipeline.ingest.dedupe import text_key

    seen_at = seen_at or datetime.now(UTC)
    existing = {
        r[0]: (r[1], r[2])
        for r in con.execute("SELECT article_id, text_sha256, version FROM articles").fetchall()
    }
    # Page texts are keyed by their hash; feed texts (short summaries) with their title too.
    known_texts = {
        (r[0], r[1]): r[2]
        for r in con.execute(
            "SELECT outlet_id, text_sha256, article_id FROM articles WHERE text_source <> 'feed'"
        ).fetchall()
    }
    feed_ids = [
        r[0]
        for r in con.execute(
            "SELECT article_id FROM articles WHERE text_source = 'feed'"
        ).fetchall()
    ]
    known_texts.update({text_key(a): a.article_id for a in fetch_articles(con, feed_ids)})
    new: list[Article] = []
    edited: list[tuple[Article, int]] = []
    unchanged = duplicates = 0
    for art in articles:
        prior = existing.get(art.article_id)
        if prior is None:
            owner = known_texts.get(text_key(art))
            if owner is not None and owner != art.article_id:
                duplicates += 1
                continue
            known_texts[text_key(art)] = art.article_id
            existing[art.article_id] = (art.text_sha256, 1)
            new.append(art)
        elif prior[0] != art.text_sha256:
            edited.append((art, prior[1] + 1))
            existing[art.article_id] = (art.text_sha256, prior[1] + 1)
        else:
            unchanged += 1
    cols = [c for c in _columns(Article)]
    with transaction(con):
        _insert(
            con,
            "articles",
            [*cols, "version", "first_seen_at", "updated_at"],
            [(*astuple(a), 1, seen_at, seen_at) for a in new],
        )
        _insert(
            con,
            "article_versions",
            ["article_id", "version", "text_sha256", "title", "text", "seen_at"],
            [(a.article_id, 1, a.text_sha256, a.title, a.text, seen_at) for a in new]
            + [(a.article_id, v, a.text_sha256, a.title, a.text, seen_at) for a, v in edited],
        )
        for art, version in edited:
            con.execute(
                "UPDATE articles SET title = ?, published_at = coalesce(?, published_at), "
                "text = ?, text_source = ?, text_sha256 = ?, lang = ?, lang_confidence = ?, "
                "lang_method = ?, version = ?, updated_at = ? WHERE article_id = ?",
                [
                    art.title,
                    art.published_at,
                    art.text,
                    art.text_source,
                    art.text_sha256,
                    art.lang,
                    art.lang_confidence,
                    art.lang_method,
                    version,
                    seen_at,
                    art.article_id,
                ],
            )
            for table in ("segments", "translations"):
                con.execute(f"DELETE FROM {table} WHERE article_id = ?", [art.article_id])
    return ArticleLoad(
        new=[a.article_id for a in new],
        edited=[a.article_id for a, _ in edited],
        unchanged=unchanged,
        duplicates=duplicates,
    )


@backends.writes("segments")
def load_segments(con: duckdb.DuckDBPyConnection, segments: Sequence[Segment]) -> None:
    with transaction(con):
        _insert(con, "segments", _columns(Segment), _rows(segments))


@backends.writes("translations")
def load_translations(
    con: duckdb.DuckDBPyConnection,
    translations: Sequence[Translation],
    *,
    at: datetime | None = None,
) -> None:
    at = at or datetime.now(UTC)
    with transaction(con):
        _insert(
            con,
            "translations",
            [*_columns(Translation), "created_at"],
            [(*astuple(t), at) for t in translations],
        )


@backends.writes("translations", "translation_cache")
def load_translation_chunk(
    con: duckdb.DuckDBPyConnection,
    translations: Sequence[Translation],
    cache_rows: Sequence[CacheRow],
    *,
    at: datetime | None = None,
) -> None:
    """Translations and the cache entries made for them, in one transaction: a crash between
    the two would leave cache entries whose rows a re-run then marks as cache hits, unlike a
    clean run."""
    from pipeline.translate.cache import DuckDBTranslationCache

    at = at or datetime.now(UTC)
    cache = DuckDBTranslationCache(con)
    by_model: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    for r in cache_rows:
        by_model.setdefault((r.model_id, r.engine), []).append(
            (r.source_sha256, r.source_text, r.text_en)
        )
    with transaction(con):
        for (model_id, engine), rows in by_model.items():
            cache.put_many(model_id, rows, engine=engine)
        _insert(
            con,
            "translations",
            [*_columns(Translation), "created_at"],
            [(*astuple(t), at) for t in translations],
        )


@backends.writes("segment_links", "divergences", "link_state", "segment_vectors")
def load_links(con: duckdb.DuckDBPyConnection, output: LinkOutput) -> None:
    """The sentence links and divergences of the linked events, replacing theirs, with the
    inputs hash each was computed from and the sentence vectors embedded for them: one
    transaction, so a crash leaves every event either relinked or as it was."""
    from dataclasses import astuple

    link_cols = ["event_id", "article_a", "seg_a", "article_b", "seg_b", "score", "method"]
    div_cols = [*link_cols[:5], "kind", "span_a", "span_b", "value_a", "value_b", "unit"]
    div_cols += ["english_a", "english_b"]
    events = sorted(output.per_event)
    links = [astuple(x) for e in events for x in output.per_event[e][0]]
    divergences = [astuple(d) for e in events for d in output.per_event[e][1]]
    with transaction(con):
        for table in ("segment_links", "divergences", "link_state"):
            con.execute(f"DELETE FROM {table} WHERE event_id IN (SELECT unnest(?))", [events])
            if output.orphans:
                con.execute(
                    f"DELETE FROM {table} WHERE event_id NOT IN "
                    "(SELECT DISTINCT event_id FROM event_articles)"
                )
        _insert(con, "segment_links", link_cols, links)
        _insert(con, "divergences", div_cols, divergences)
        _insert(con, "link_state", ["event_id", "fingerprint"], sorted(output.fingerprints.items()))
        upsert_segment_vectors(con, output.new_vectors)


def upsert_segment_vectors(
    con: duckdb.DuckDBPyConnection, rows: Sequence[tuple[str, int, str, str, Any]]
) -> None:
    """(article_id, seg_no, embedder, text_sha256, float32 vector) rows into `segment_vectors`,
    by natural key, in the caller's transaction (a DuckDB file and a DuckLake alike)."""
    if not rows:
        return
    import pyarrow as pa

    cols = ["article_id", "seg_no", "embedder", "text_sha256", "vector"]
    table = pa.table(
        {
            "article_id": [r[0] for r in rows],
            "seg_no": pa.array([r[1] for r in rows], type=pa.int32()),
            "embedder": [r[2] for r in rows],
            "text_sha256": [r[3] for r in rows],
            "vector": pa.array([r[4] for r in rows], type=pa.list_(pa.float32())),
        }
    )
    con.register(_SEGVEC_IN, table)
    try:
        merge_from(con, "segment_vectors", cols, f"SELECT {', '.join(cols)} FROM {_SEGVEC_IN}")
    finally:
        con.unregister(_SEGVEC_IN)


_SEGVEC_IN = "_parallax_segvec_in"


@backends.writes("events", "event_articles")
def load_events(
    con: duckdb.DuckDBPyConnection,
    events: Sequence[Event],
    assignments: Sequence[EventArticle],
    merged: Mapping[str, str] | None = None,
    *,
    only_folded: bool = False,
) -> None:
    """Replace the given events and their members; events left without members are dropped.
    `merged` (folded event id -> surviving id) moves the stored members of folded events.
    `only_folded`: the caller only added members (an align batch), so only folded events can
    be left empty and only those are checked, not every stored event."""
    with transaction(con):
        for folded, survivor in sorted((merged or {}).items()):
            con.execute(
                "UPDATE event_articles SET event_id = ? WHERE event_id = ?", [survivor, folded]
            )
        _insert(
            con,
            "events",
            _columns(Event),
            [
                (
                    e.event_id,
                    e.label,
                    e.first_seen,
                    e.last_seen,
                    list(e.outlets),
                    list(e.langs),
                    e.size,
                )
                for e in events
            ],
        )
        _insert(con, "event_articles", _columns(EventArticle), _rows(assignments))
        empty = "event_id NOT IN (SELECT DISTINCT event_id FROM event_articles)"
        if not only_folded:
            con.execute(f"DELETE FROM events WHERE {empty}")
        elif merged:
            with ids_in(con, "event_id", sorted(merged)) as folded:
                con.execute(f"DELETE FROM events WHERE {folded} AND {empty}")


@backends.writes("events", "event_articles")
def clear_events(con: duckdb.DuckDBPyConnection, since: datetime | None = None) -> int:
    """Forget event assignments (of articles published since `since`, or all) so the next align
    re-clusters them from scratch. Returns how many assignments were dropped."""
    where = (
        ""
        if since is None
        else (
            " WHERE article_id IN (SELECT article_id FROM articles WHERE published_at >= ? "
            "OR published_at IS NULL)"
        )
    )
    params = [] if since is None else [since]
    with transaction(con):
        n = con.execute(f"SELECT count(*) FROM event_articles{where}", params).fetchall()[0][0]
        con.execute(f"DELETE FROM event_articles{where}", params)
        con.execute(
            "DELETE FROM events WHERE event_id NOT IN (SELECT DISTINCT event_id FROM event_articles)"
        )
    return int(n)


@backends.writes("rejects")
def load_rejects(
    con: duckdb.DuckDBPyConnection, rejects: Sequence[Reject], *, at: datetime | None = None
) -> None:
    at = at or datetime.now(UTC)
    with transaction(con):
        _insert(
            con, "rejects", [*_columns(Reject), "seen_at"], [(*astuple(r), at) for r in rejects]
        )


@backends.writes("feed_state")
def load_feed_states(con: duckdb.DuckDBPyConnection, states: Sequence[FeedState]) -> None:
    """Replace each outlet's feed state (conditional GET, body hash, back-off, status)."""
    with transaction(con):
        _insert(con, "feed_state", _columns(FeedState), _rows(states))


# ---------------------------------------------------------------- reads


def fetch_feed_states(con: duckdb.DuckDBPyConnection) -> dict[str, FeedState]:
    cols = ", ".join(_columns(FeedState))
    rows = con.execute(f"SELECT {cols} FROM feed_state").fetchall()
    states = (FeedState(*r) for r in rows)
    return {s.outlet_id: replace(s, items_seen=int(s.items_seen or 0)) for s in states}


def read_feed_states(settings: Settings) -> dict[str, FeedState]:
    """Feed states from the warehouse file, opened read-only for the moment it takes.

    Ingest runs with no database open, so it asks here first. No file, an older schema, or a
    writer holding the lock past the retries give ``{}``: the fetches are then unconditional,
    which costs bandwidth, never correctness.
    """
    lake = backends.backend_for(settings).is_lake
    if not lake and (settings.warehouse == ":memory:" or not Path(settings.warehouse).is_file()):
        return {}
    try:
        con = connect(settings, read_only=True)
    except Exception as exc:  # locked, or opened in this process with another configuration
        log.warning("feed state not read (%s); fetching feeds unconditionally", exc)
        return {}
    try:
        return fetch_feed_states(con)
    except Exception as exc:  # a warehouse from before migration 009
        log.warning("feed state not read (%s); fetching feeds unconditionally", exc)
        return {}
    finally:
        con.close()


def _article_from_row(row: Sequence[Any]) -> Article:
    return Article(*row)


def fetch_articles(
    con: duckdb.DuckDBPyConnection, article_ids: Sequence[str] | None = None
) -> list[Article]:
    cols = ", ".join(_columns(Article))
    sql = f"SELECT {cols} FROM articles"
    order = " ORDER BY published_at NULLS LAST, article_id"
    if article_ids is None:
        return [_article_from_row(r) for r in con.execute(sql + order).fetchall()]
    if not article_ids:
        return []
    with ids_in(con, "article_id", article_ids) as where:
        return [_article_from_row(r) for r in con.execute(f"{sql} WHERE {where}{order}").fetchall()]


def articles_without_segments(con: duckdb.DuckDBPyConnection) -> list[Article]:
    ids = [
        r[0]
        for r in con.execute(
            "SELECT a.article_id FROM articles a ANTI JOIN segments s USING (article_id)"
        ).fetchall()
    ]
    return fetch_articles(con, ids)


def segments_without_translation(con: duckdb.DuckDBPyConnection) -> list[Segment]:
    """Segments with no translation row yet (pending work for the translate stage)."""
    rows = con.execute(
        "SELECT s.article_id, s.seg_no, s.para_no, s.text, s.lang FROM segments s "
        "ANTI JOIN translations t ON s.article_id = t.article_id AND s.seg_no = t.seg_no "
        "ORDER BY s.article_id, s.seg_no"
    ).fetchall()
    return [Segment(*r) for r in rows]


def english_text(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """English text per article: the original for English, else its translations so far.

    An article whose segments are not all translated yet has no English here: a partial
    translation would skew the lexical signal more than no signal.
    """
    rows = con.execute(
        """
        WITH en AS (
            SELECT article_id, seg_no, arg_max(text_en, created_at) AS text_en
            FROM translations GROUP BY article_id, seg_no
        )
        SELECT s.article_id, string_agg(en.text_en, ' ' ORDER BY s.seg_no)
        FROM segments s LEFT JOIN en USING (article_id, seg_no)
        GROUP BY s.article_id
        HAVING count(en.text_en) = count(*)
        """
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def fetch_event_articles(con: duckdb.DuckDBPyConnection) -> list[EventArticle]:
    rows = con.execute(
        "SELECT event_id, article_id, similarity FROM event_articles ORDER BY article_id"
    ).fetchall()
    return [EventArticle(*r) for r in rows]


def table_counts(con: duckdb.DuckDBPyConnection, tables: Iterable[str]) -> dict[str, int]:
    return {t: int(con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]) for t in tables}
