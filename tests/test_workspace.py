"""Finding the workspace (PARALLAX_HOME, the current folder upwards, the checkout, the per-user
data directory) and what `parallax init` makes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.settings import PROJECT_ROOT, load_settings
from pipeline.workspace import find_workspace, init_workspace, is_checkout, resource_dir


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for var in (
        "PARALLAX_HOME",
        "PARALLAX_CONFIG",
        "PARALLAX_WAREHOUSE",
        "PARALLAX_OUTLETS",
        "PARALLAX_MODELS_DIR",
        "PARALLAX_RUNTIME_DIR",
        "PARALLAX_REGISTRY",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return tmp_path


def test_checkout_is_a_workspace_with_its_layout(clean_env: Path) -> None:
    assert is_checkout(PROJECT_ROOT)
    ws = find_workspace(PROJECT_ROOT / "pipeline")
    assert ws.root == PROJECT_ROOT and ws.checkout
    assert ws.outlets_path == PROJECT_ROOT / "config" / "outlets.toml"
    assert ws.models_dir == PROJECT_ROOT / "models" / "store"
    assert resource_dir("schema") == PROJECT_ROOT / "warehouse"


def test_parallax_toml_in_a_parent_folder(clean_env: Path) -> None:
    made = init_workspace(clean_env / "ws")
    assert {p.name for p in made} == {"parallax.toml", "outlets.toml", "warehouse", "models", "var"}
    (clean_env / "ws" / "deep" / "er").mkdir(parents=True)
    ws = find_workspace(clean_env / "ws" / "deep" / "er")
    assert ws.root == clean_env / "ws" and not ws.checkout and ws.how == "current directory"
    assert ws.outlets_path == clean_env / "ws" / "outlets.toml"
    assert ws.warehouse_path == clean_env / "ws" / "warehouse" / "parallax.duckdb"
    (clean_env / "ws" / "outlets.toml").write_text("# mine\n", encoding="utf-8")
    assert init_workspace(clean_env / "ws") == []  # nothing overwritten
    assert (clean_env / "ws" / "outlets.toml").read_text(encoding="utf-8") == "# mine\n"


def test_parallax_home_wins(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    init_workspace(clean_env / "elsewhere")
    monkeypatch.setenv("PARALLAX_HOME", str(clean_env / "home-ws"))
    ws = find_workspace(clean_env / "elsewhere")
    assert ws.root == clean_env / "home-ws" and ws.how == "PARALLAX_HOME"


def test_user_data_dir_when_nothing_else(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARALLAX_ROOT", str(clean_env / "not-a-checkout"))
    (clean_env / "empty").mkdir()
    ws = find_workspace(clean_env / "empty")
    assert ws.root == clean_env / "xdg" / "parallax" and ws.how == "user data directory"


def test_settings_follow_the_workspace_and_resolve_relative_paths(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = clean_env / "ws"
    init_workspace(root)
    (root / "parallax.toml").write_text(
        'warehouse = "data/wh.duckdb"\nmodels_dir = "/opt/models"\n[translate]\ntier = "quality"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("PARALLAX_HOME", str(root))
    s = load_settings()
    assert s.root == root and s.warehouse == str(root / "data" / "wh.duckdb")
    assert s.models_dir == Path("/opt/models") and s.translate.tier == "quality"
    assert s.outlets_path == root / "outlets.toml" and s.runtime_dir == root / "var"
    monkeypatch.setenv("PARALLAX_WAREHOUSE", str(clean_env / "env.duckdb"))
    assert load_settings().warehouse == str(clean_env / "env.duckdb")  # env still overrides


def test_init_and_where_commands(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = clean_env / "new"
    res = CliRunner().invoke(app, ["init", str(target)])
    assert res.exit_code == 0 and f"created {target / 'parallax.toml'}" in res.stdout
    monkeypatch.chdir(target)
    where = CliRunner().invoke(app, ["where"])
    assert where.exit_code == 0 and f"workspace: {target} (current directory)" in where.stdout
