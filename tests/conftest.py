"""Shared fixtures: a tiny MarianMT model built once per run, a sample server on 127.0.0.1."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One vector store for the whole session (`align.vector_store`): the many tests that run the
# pipeline over the same sample texts, in this process or in Airflow/Celery/CLI children that
# inherit the environment, embed each text once. tests/test_vector_store.py covers the store.
_VECTORS = tempfile.mkdtemp(prefix="parallax-test-vectors-")
os.environ.setdefault("PARALLAX_VECTOR_STORE", _VECTORS)
atexit.register(shutil.rmtree, _VECTORS, ignore_errors=True)

from pipeline.settings import PROJECT_ROOT, Settings, load_settings  # noqa: E402


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tiny_marian import make_models_dir

    return make_models_dir(tmp_path_factory.mktemp("models"))


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    """Settings pointing every writable path into the test's own folder."""
    return load_settings(
        warehouse=str(tmp_path / "wh.duckdb"),
        runtime_dir=tmp_path / "var",
        staging_dir=tmp_path / "var" / "staging",
        models_dir=tmp_path / "no-models",
    )


@pytest.fixture(scope="session")
def sample_server() -> Iterator[str]:
    from pipeline.sample_server import serve_samples

    with serve_samples(PROJECT_ROOT / "samples" / "site", port=0) as base:
        yield base


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory, tiny_models_dir: Path):  # type: ignore[no-untyped-def]
    """`parallax demo` run once per session (tiny models): the demo test, the report's browser,
    round-trip and incremental tests all read this warehouse and its report site."""
    from typer.testing import CliRunner

    from pipeline.cli import app

    root = tmp_path_factory.mktemp("demo")
    config = root / "parallax.toml"
    # the tiny random model never emits end-of-sentence: keep its nonsense short
    config.write_text("[translate]\nmax_new_tokens = 16\n", encoding="utf-8")
    env = {
        "PARALLAX_CONFIG": str(config),
        "PARALLAX_WAREHOUSE": str(root / "wh.duckdb"),
        "PARALLAX_RUNTIME_DIR": str(root / "var"),
        "PARALLAX_MODELS_DIR": str(tiny_models_dir),
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        res = CliRunner().invoke(app, ["demo", "--port", "0"])
    res.env = env  # type: ignore[attr-defined]
    res.root = root  # type: ignore[attr-defined]
    return res


@pytest.fixture(scope="session")
def demo_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`parallax demo` once per session with NO translation model (every he/ar sentence stays
    pending), a watch "rafah" (file notifier) added before it. Tests that write copy the file
    (see `demo_copy`); the folder also holds the watch's alert file, alerts.jsonl."""
    from typer.testing import CliRunner

    from pipeline.cli import app

    root = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PARALLAX_CONFIG", str(root / "none.toml"))
        mp.setenv("PARALLAX_WAREHOUSE", str(root / "wh.duckdb"))
        mp.setenv("PARALLAX_RUNTIME_DIR", str(root / "var"))
        mp.setenv("PARALLAX_MODELS_DIR", str(root / "no-models"))
        runner = CliRunner()
        res = runner.invoke(
            app, ["watch", "add", "rafah", "Rafah", "--notify", f"file:{root / 'alerts.jsonl'}"]
        )
        assert res.exit_code == 0, res.output
        res = runner.invoke(app, ["demo", "--port", "0", "--export-dir", str(root / "exports")])
        assert res.exit_code == 0, res.output
    yield root / "wh.duckdb"


@pytest.fixture()
def demo_copy(demo_warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the demo warehouse, with PARALLAX_* pointing at it for CLI calls."""
    import shutil

    target = tmp_path / "wh.duckdb"
    shutil.copy(demo_warehouse, target)
    monkeypatch.setenv("PARALLAX_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("PARALLAX_WAREHOUSE", str(target))
    monkeypatch.setenv("PARALLAX_RUNTIME_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("PARALLAX_MODELS_DIR", str(tmp_path / "no-models"))
    return target


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[object]:
    """One throwaway PostgreSQL cluster on 127.0.0.1 for the session (DuckLake catalogs, Airflow
    metadata); each test creates its own databases in it."""
    from pipeline.devservices import pg_bindir, postgres_cluster

    try:
        pg_bindir()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    with postgres_cluster() as cluster:
        yield cluster
