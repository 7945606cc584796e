"""The built wheel, installed into a fresh virtualenv, works with no checkout around it.

Builds the wheel offline from a copy of the checkout (with a stray warehouse file and a model
store planted in it, which must stay out), installs it with `pip install --no-deps` into a new
virtualenv that sees the already-installed dependencies through a .pth file, then runs
`parallax init` + `parallax demo` from an empty folder outside the checkout, PYTHONPATH unset.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from pipeline.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow

SUMMARY = re.compile(
    r"articles=(\d+) languages=([a-z,]+) segments=(\d+) translated=(\d+) pending=(\d+) "
    r"events=(\d+) warehouse=(\S+) export=(\S+) report=(\S+)"
)


def _copy_checkout(target: Path) -> None:
    """The checkout's tracked and new (not ignored) files, as a clean clone would have them."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=PROJECT_ROOT,
        capture_output=True,
    )
    if listed.returncode != 0:  # not a git checkout (an unpacked source archive): copy it all
        skip = shutil.ignore_patterns(".git", ".venv", "var", "build", "dist", "store", "*.duckdb*")
        shutil.copytree(PROJECT_ROOT, target, ignore=skip, dirs_exist_ok=True)
        return
    for rel in filter(None, listed.stdout.decode().split("\0")):
        src = PROJECT_ROOT / rel
        if src.is_file():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target / rel)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    _copy_checkout(src)
    (src / "warehouse" / "parallax.duckdb").write_bytes(b"not for the wheel")
    (src / "models" / "store" / "x").mkdir(parents=True)
    (src / "models" / "store" / "x" / "model.safetensors").write_bytes(b"not for the wheel")
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", str(out), str(src)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("parallax_news-*.whl")
    return built


def test_wheel_carries_the_resources_and_nothing_of_a_workspace(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    schema = {n for n in names if n.startswith("pipeline/schema/")}
    assert "pipeline/schema/001_schema.sql" in schema and "pipeline/schema/views.sql" in schema
    assert {Path(n).name for n in schema} == {
        p.name for p in (PROJECT_ROOT / "warehouse").glob("*.sql")
    }
    assert "pipeline/registry/registry.toml" in names
    assert "pipeline/catalog/outlets.toml" in names
    assert (
        "pipeline/sample/outlets.toml" in names and "pipeline/sample/site/haboker/feed.xml" in names
    )
    assert "pipeline/export/templates/event.html.j2" in names
    assert not [n for n in names if n.endswith(".duckdb") or "/store/" in n]


def _env(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PARALLAX_", "PYTHON")) and k not in ("VIRTUAL_ENV",)
    }
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / "data"), HF_HUB_OFFLINE="1")
    if os.environ.get("PARALLAX_VECTOR_STORE"):  # the session's shared vectors (conftest)
        env["PARALLAX_VECTOR_STORE"] = os.environ["PARALLAX_VECTOR_STORE"]
    return env


def test_installed_wheel_runs_init_and_demo_outside_the_checkout(
    wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    py = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # The dependencies already installed here, visible without a network; the wheel's own
    # `pipeline` comes first on the path (this venv's site-packages).
    Path(purelib, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    env = _env(tmp_path / "home")
    subprocess.run(
        [str(py), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
        capture_output=True,
        env=env,
    )
    parallax = str(venv / "bin" / "parallax")
    work = tmp_path / "empty"
    work.mkdir()

    def run(*args: str, cwd: Path = work) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [parallax, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
        )

    where = subprocess.run(
        [str(py), "-c", "import pipeline; print(pipeline.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(venv)), where.stdout

    nowhere = run("where")  # an empty folder, no workspace yet: the per-user data directory
    assert nowhere.returncode == 0, nowhere.stderr
    assert f"workspace: {tmp_path / 'home' / 'data' / 'parallax'} (user data directory)" in (
        nowhere.stdout
    )

    init = run("init")
    assert init.returncode == 0, init.stderr
    assert (work / "parallax.toml").is_file() and (work / "outlets.toml").is_file()

    demo = run("demo", "--port", "0")
    assert demo.returncode == 0, demo.stderr[-3000:]
    m = SUMMARY.fullmatch(demo.stdout.strip().splitlines()[-1])
    assert m, demo.stdout[-500:]
    articles, langs, _segments, translated, pending, events = m.groups()[:6]
    assert int(articles) >= 36 and set(langs.split(",")) == {"he", "ar", "en"}
    # no models in this fresh workspace: Hebrew and Arabic wait for `parallax models download`
    assert int(translated) == 0 and int(pending) > 0 and int(events) >= 5
    assert Path(m.group(7)) == work / "warehouse" / "parallax.duckdb"
    assert Path(m.group(8)).is_relative_to(work / "var") and Path(m.group(8)).is_file()

    catalog = run("outlets", "catalog", "--format", "json")
    assert catalog.returncode == 0, catalog.stderr
    entries = json.loads(catalog.stdout)
    assert len(entries) >= 36
    assert all(sum(e["lang"] == lang for e in entries) >= 12 for lang in ("he", "ar", "en"))
