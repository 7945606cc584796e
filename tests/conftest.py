"""Shared fixtures: a tiny MarianMT model built once per run, a sample server on 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

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
