"""Model registry, folder checks, listing and downloading (against hubs served from 127.0.0.1)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from pipeline.settings import PROJECT_ROOT, Settings, load_settings
from pipeline.translate import translate_segments
from pipeline.translate.download import download_models, list_models
from pipeline.translate.registry import (
    RegistryError,
    check_model_folder,
    load_registry,
    model_folder,
)

REGISTRY = PROJECT_ROOT / "models" / "registry.toml"
HE_ID = "Helsinki-NLP/opus-mt-he-en"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="session")
def _tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tiny_marian import make_models_dir

    return make_models_dir(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture()
def he_folder(tmp_path: Path, _tiny_models: Path) -> Path:
    """A private copy of the tiny he-en folder a test may damage."""
    return Path(shutil.copytree(_tiny_models / HE_ID.replace("/", "--"), tmp_path / "he"))


def _settings(tmp_path: Path, models_dir: Path) -> Settings:
    return load_settings(
        runtime_dir=tmp_path / "var", models_dir=models_dir, registry_path=REGISTRY
    )


def test_registry_has_both_pairs() -> None:
    registry = load_registry(REGISTRY)
    assert set(registry) == {"he", "ar"}
    he = registry["he"]
    assert (he.pair, he.src, he.tgt, he.hf_id) == ("he-en", "he", "en", HE_ID)
    assert registry["ar"].hf_id == "Helsinki-NLP/opus-mt-ar-en"
    assert all(s.engine == "ctranslate2" and s.revision for s in registry.values())
    assert all(s.quantization == "int8" for s in registry.values())
    assert model_folder(Path("/m"), he) == Path("/m/Helsinki-NLP--opus-mt-he-en")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[model]]\npair = "he-en"\nsrc = "he"\n', "missing"),
        (
            '[[model]]\npair="x"\nsrc="he"\ntgt="en"\nhf_id="a/b"\nrevision="r"\ncolour="red"\n',
            "unknown",
        ),
        (
            '[[model]]\npair="x"\nsrc="he"\ntgt="en"\nhf_id="a/b"\nrevision="r"\nengine="onnx"\n',
            "engine",
        ),
        ('[[model]]\npair="x"\nsrc="he"\ntgt="en"\nhf_id="a/b"\nrevision="r"\n' * 2, "two models"),
        ("[[model]\n", "not valid TOML"),
    ],
)
def test_bad_registry_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "registry.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RegistryError, match=message):
        load_registry(path)


def test_complete_folder_has_no_problems(he_folder: Path) -> None:
    assert check_model_folder(he_folder) == []


def test_missing_folder(tmp_path: Path) -> None:
    assert check_model_folder(tmp_path / "nope") == [
        f"model folder {tmp_path / 'nope'} does not exist"
    ]


def test_truncated_config(he_folder: Path) -> None:
    config = he_folder / "config.json"
    config.write_bytes(config.read_bytes()[:40])
    assert [p for p in check_model_folder(he_folder) if "config.json is not valid JSON" in p]


def test_missing_and_empty_files(he_folder: Path) -> None:
    (he_folder / "source.spm").unlink()
    (he_folder / "vocab.json").write_bytes(b"")
    (he_folder / "target.spm").write_bytes(b"not a sentencepiece model")
    problems = check_model_folder(he_folder)
    assert "missing source.spm" in problems
    assert "vocab.json is empty (0 bytes)" in problems
    assert any(p.startswith("target.spm is not a sentencepiece model") for p in problems)


def test_truncated_and_missing_weights(he_folder: Path) -> None:
    weights = he_folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    assert any("model.safetensors is truncated" in p for p in check_model_folder(he_folder))
    weights.unlink()
    assert "missing weights (model.safetensors or pytorch_model.bin)" in check_model_folder(
        he_folder
    )


def test_truncated_config_leaves_segments_pending(
    tmp_path: Path, _tiny_models: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from pipeline.records import Segment

    models = Path(shutil.copytree(_tiny_models, tmp_path / "models"))
    (models / "Helsinki-NLP--opus-mt-he-en" / "config.json").write_text("{", encoding="utf-8")
    rows, result = translate_segments(
        [Segment("a", 0, 0, "שלום עולם.", "he")], _settings(tmp_path, models), None
    )
    assert rows == [] and result.counts["pending"] == 1
    assert "config.json is not valid JSON" in caplog.text


def test_list_models_reports_presence_and_size(tmp_path: Path, _tiny_models: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(
        _tiny_models / "Helsinki-NLP--opus-mt-he-en", models / "Helsinki-NLP--opus-mt-he-en"
    )
    statuses = {s.pair: s for s in list_models(_settings(tmp_path, models))}
    he, ar = statuses["he-en"], statuses["ar-en"]
    expected = sum(p.stat().st_size for p in he.folder.iterdir())
    assert he.present and he.problems == () and he.size_bytes == expected > 0
    assert not ar.present and ar.size_bytes == 0 and "does not exist" in ar.problems[0]
    assert (he.hf_id, he.revision, he.engine) == (
        HE_ID,
        load_registry(REGISTRY)["he"].revision,
        "ctranslate2",
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let huggingface_hub make requests (tests only ever point it at 127.0.0.1)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def test_download_unreachable_hub_fails_fast(
    tmp_path: Path, online: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    started = time.monotonic()
    results = download_models(_settings(tmp_path, tmp_path / "models"), progress=False)
    assert time.monotonic() - started < 5
    assert [r.pair for r in results] == ["he-en", "ar-en"]
    for r in results:
        assert not r.ok and "\n" not in r.message
        assert f"cannot reach {endpoint}" in r.message


def test_download_offline_mode_says_so(tmp_path: Path) -> None:
    results = download_models(_settings(tmp_path, tmp_path / "models"), pairs=["he-en"])
    assert len(results) == 1 and not results[0].ok
    assert "HF_HUB_OFFLINE" in results[0].message


def test_download_quick_skips_complete_folders(tmp_path: Path, _tiny_models: Path) -> None:
    results = download_models(_settings(tmp_path, _tiny_models), quick=True)
    assert all(r.ok and r.skipped for r in results)


def test_download_unknown_pair(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fr-en"):
        download_models(_settings(tmp_path, tmp_path / "m"), pairs=["fr-en"])


class _FakeHub(BaseHTTPRequestHandler):
    """The few endpoints snapshot_download uses: model info, tree listing, resolve (HEAD/GET)."""

    files: dict[str, dict[str, bytes]] = {}  # repo id -> file name -> content
    requests: list[str] = []
    recorded_sha256: dict[str, str] = {}  # file name -> what the hub claims (a lie, in a test)
    lfs_files = ("model.safetensors", "source.spm", "target.spm")

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str], head: bool) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _route(self, head: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        self.requests.append(f"{self.command} {path}")
        for repo, files in self.files.items():
            info = f"/api/models/{repo}/revision/"
            tree = f"/api/models/{repo}/tree/{COMMIT}"
            resolve = f"/{repo}/resolve/{COMMIT}/"
            if path.startswith(info):
                blobs = "blobs=true" in urlsplit(self.path).query.lower()
                body = {
                    "id": repo,
                    "sha": COMMIT,
                    "siblings": [self._sibling(n, b, blobs) for n, b in files.items()],
                }
                return self._send(200, json.dumps(body).encode(), {}, head)
            if path == tree:
                listing = [
                    {"type": "file", "path": n, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                    for n, b in files.items()
                ]
                return self._send(200, json.dumps(listing).encode(), {}, head)
            if path.startswith(resolve) and path[len(resolve) :] in files:
                data = files[path[len(resolve) :]]
                headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{hashlib.sha1(data).hexdigest()}"'}
                return self._send(200, data, headers, head)
        self._send(404, b'{"error": "not found"}', {"X-Error-Code": "RepoNotFound"}, head)

    @classmethod
    def _sibling(cls, name: str, data: bytes, blobs: bool) -> dict[str, object]:
        """A file as the hub's model info lists it; with ?blobs=true, its size and hashes."""
        if not blobs:
            return {"rfilename": name}
        blob_id = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        entry: dict[str, object] = {"rfilename": name, "size": len(data), "blobId": blob_id}
        if name in cls.lfs_files:
            sha = cls.recorded_sha256.get(name, hashlib.sha256(data).hexdigest())
            entry["lfs"] = {"size": len(data), "sha256": sha, "pointerSize": 134}
        return entry

    def do_GET(self) -> None:
        self._route(head=False)

    def do_HEAD(self) -> None:
        self._route(head=True)


@pytest.fixture()
def fake_hub(_tiny_models: Path) -> Iterator[str]:
    folder = _tiny_models / HE_ID.replace("/", "--")
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    files["README.md"] = b"tiny model card"  # not in the allow list: must not be fetched
    _FakeHub.files = {HE_ID: files}
    _FakeHub.requests = []
    _FakeHub.recorded_sha256 = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_download_from_local_hub(
    tmp_path: Path, online: None, fake_hub: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", fake_hub)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    settings = _settings(tmp_path, tmp_path / "models")
    results = download_models(settings, progress=False)
    he, ar = results
    assert he.ok, he.message
    assert he.commit == COMMIT
    assert check_model_folder(he.folder) == []
    assert not (he.folder / "README.md").exists()
    assert not ar.ok and f"{fake_hub} refused Helsinki-NLP/opus-mt-ar-en@" in ar.message
    assert "RepositoryNotFoundError" in ar.message and not ar.folder.exists()
    status = {s.pair: s for s in list_models(settings)}
    assert status["he-en"].present and not status["ar-en"].present
    # The downloaded folder translates through the normal path.
    from pipeline.records import Segment

    quick = replace(settings, translate=replace(settings.translate, max_new_tokens=8))
    rows, result = translate_segments([Segment("a", 0, 0, "שלום עולם.", "he")], quick, None)
    assert result.counts["translated"] == 1 and rows[0].model_id == HE_ID
    assert "sizes and hashes verified" in he.message


def test_download_refuses_files_that_differ_from_the_hubs_record(
    tmp_path: Path, online: None, fake_hub: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", fake_hub)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    _FakeHub.recorded_sha256 = {"model.safetensors": "f" * 64}  # not what the hub serves
    (he,) = download_models(
        _settings(tmp_path, tmp_path / "models"), pairs=["he-en"], progress=False
    )
    assert not he.ok and he.commit == COMMIT
    assert "does not match the hub's record" in he.message
    assert "model.safetensors sha256" in he.message and "ffffffffffff" in he.message
    assert "delete" in he.message and "\n" not in he.message


def test_verify_files_checks_sizes_and_blob_ids(tmp_path: Path) -> None:
    from huggingface_hub.hf_api import BlobLfsInfo, RepoSibling

    from pipeline.translate.download import verify_files

    (tmp_path / "config.json").write_bytes(b"{}")
    (tmp_path / "vocab.json").write_bytes(b'{"a": 1}')
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    good_blob = hashlib.sha1(b"blob 2\0{}").hexdigest()
    siblings = {
        "config.json": RepoSibling("config.json", 2, good_blob),
        "vocab.json": RepoSibling("vocab.json", 8, "0" * 40),
        "model.safetensors": RepoSibling(
            "model.safetensors", 9, None, BlobLfsInfo(9, hashlib.sha256(b"x").hexdigest(), 134)
        ),
    }
    problems = verify_files(tmp_path, siblings, ["config.json", "vocab.json", "model.safetensors"])
    assert len(problems) == 2
    assert problems[0].startswith("vocab.json blob")
    assert problems[1] == "model.safetensors has 7 bytes, the hub says 9"


def test_registry_tiers_pins_and_published_bleu(tmp_path: Path) -> None:
    from pipeline.translate.registry import load_registry_entries

    entries = load_registry_entries(REGISTRY)
    assert {(e.src, e.tier) for e in entries} == {
        ("he", "default"),
        ("ar", "default"),
        ("he", "quality"),
        ("ar", "quality"),
    }
    pinned = {e.hf_id: e.revision for e in entries}
    # every revision is a 40-hex commit, except the one no commit id could be found for
    unpinned = {h for h, r in pinned.items() if not re.fullmatch(r"[0-9a-f]{40}", r)}
    assert unpinned == {HE_ID} and pinned[HE_ID] == "main"
    quality = load_registry(REGISTRY, "quality")
    assert quality["he"].hf_id == "Helsinki-NLP/opus-mt-tc-big-he-en"
    assert quality["ar"].hf_id == "Helsinki-NLP/opus-mt-tc-big-ar-en"
    assert all(s.bleu for s in quality.values()) and load_registry(REGISTRY)["ar"].bleu
    with pytest.raises(RegistryError, match="no models in tier 'fast'"):
        load_registry(REGISTRY, "fast")
    settings = replace(
        _settings(tmp_path, tmp_path / "m"),
        translate=replace(load_settings().translate, tier="quality"),
    )
    statuses = list_models(settings, all_tiers=True)
    assert len(statuses) == 4
    active = {s.hf_id for s in statuses if s.active}
    assert active == {quality["he"].hf_id, quality["ar"].hf_id}


def test_models_list_shows_tiers_and_bleu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from pipeline.cli import app

    monkeypatch.setenv("PARALLAX_MODELS_DIR", str(tmp_path / "m"))
    monkeypatch.setenv("COLUMNS", "250")
    res = CliRunner().invoke(app, ["models", "list"])
    assert res.exit_code == 0, res.output
    assert "opus-mt-tc-big-he-en" in res.stdout and "53.8" in res.stdout
    assert "Tatoeba.ar.en 49.4" in res.stdout and "quality" in res.stdout
