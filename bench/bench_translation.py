"""Translation throughput: transformers vs CTranslate2 on an OPUS-MT-sized Marian model.

Run inside the project's environment:  .venv/bin/python bench/bench_translation.py [--quick]
[--device cuda]. It builds a randomly initialised MarianMT with the OPUS-MT he-en dimensions
(d_model 512, 6+6 layers, 8 heads, FFN 2048, 64,001-entry vocabulary), converts it to CTranslate2
(int8 and float32), and times the same sentences with forced equal output length through both
engines, greedy and beam 4, in one run, so every figure is a ratio measured on one machine. The
last line is machine-readable:
greedy_speedup=X beam4_speedup=Y f32_identical=true|false int8_agreement=Z stage_efficiency=W
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

VOCAB = 64_000  # pieces besides <pad>: vocab_size 64,001 with <pad> last, as in opus-mt-he-en
HF_ID = "Helsinki-NLP/opus-mt-he-en"  # the registry id the benchmark model stands in for


def build_opus_sized(dest: Path) -> Path:
    """A random MarianMT folder with OPUS-MT he-en dimensions and a 64k vocabulary.

    The sentencepiece model is trained on the tiny test corpus; vocab.json is padded with
    synthetic pieces to 64,000 entries plus <pad>, so the embedding and output layers have the
    real model's size (they dominate decoding cost).
    """
    import sentencepiece as spm
    import torch
    from transformers import MarianConfig, MarianMTModel

    from tests.tiny_marian import _train_spm

    if (dest / "model.safetensors").is_file():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    spm_bytes = _train_spm(400)
    (dest / "source.spm").write_bytes(spm_bytes)
    (dest / "target.spm").write_bytes(spm_bytes)
    sp = spm.SentencePieceProcessor(model_proto=spm_bytes)
    vocab: dict[str, int] = {"</s>": 0, "<unk>": 1}
    for i in range(sp.get_piece_size()):
        piece = sp.id_to_piece(i)
        if piece not in vocab and piece not in ("<s>", "<pad>"):
            vocab[piece] = len(vocab)
    n = 0
    while len(vocab) < VOCAB:
        vocab[f"▁w{n}"] = len(vocab)
        n += 1
    vocab["<pad>"] = len(vocab)
    (dest / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    pad = vocab["<pad>"]
    config = MarianConfig(
        vocab_size=len(vocab),
        d_model=512,
        encoder_layers=6,
        decoder_layers=6,
        encoder_attention_heads=8,
        decoder_attention_heads=8,
        encoder_ffn_dim=2048,
        decoder_ffn_dim=2048,
        max_position_embeddings=512,
        pad_token_id=pad,
        decoder_start_token_id=pad,
        eos_token_id=0,
        forced_eos_token_id=0,
        scale_embedding=True,
        share_encoder_decoder_embeddings=True,
        activation_function="swish",
    )
    torch.manual_seed(0)
    MarianMTModel(config).eval().save_pretrained(dest)
    (dest / "tokenizer_config.json").write_text(
        json.dumps({"model_max_length": 512, "source_lang": "he", "target_lang": "en"}),
        encoding="utf-8",
    )
    return dest


def sentences(count: int) -> list[str]:
    """News-like Hebrew and Arabic sentences of 10-40 source tokens, all distinct."""
    from tests.tiny_marian import corpus_lines

    lines = [ln for ln in corpus_lines() if not ln[0].isascii()]
    out = []
    for i in range(count):
        k = 1 + i % 3  # one to three clauses
        out.append(" ".join(lines[(i * 7 + j * 13) % len(lines)] for j in range(k)) + f" {i}")
    return out


def spec() -> Any:
    from pipeline.translate.registry import ModelSpec

    return ModelSpec("he-en", "he", "en", HF_ID, "bench", "ctranslate2", "int8")


def timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def agreement(a: list[list[str]], b: list[list[str]]) -> float:
    """Share of output positions where two engines chose the same token."""
    same = total = 0
    for x, y in zip(a, b, strict=True):
        total += max(len(x), len(y))
        same += sum(1 for p, q in zip(x, y, strict=False) if p == q)
    return same / total if total else 1.0


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM; ru_maxrss survives exec on Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(args: argparse.Namespace) -> None:
    """One engine over many synthetic articles, in its own process; prints a JSON line."""
    import duckdb

    from pipeline import warehouse
    from pipeline.records import Segment
    from pipeline.settings import TranslateSettings, load_settings
    from pipeline.translate import translate_segments
    from pipeline.translate.cache import DuckDBTranslationCache

    models = Path(args.models_dir)
    ts = TranslateSettings(
        engine=args.engine,
        batch_size=64,
        max_batch_tokens=args.max_batch_tokens,
        max_new_tokens=args.new_tokens,
        inter_threads=args.inter,
        intra_threads=args.intra,
        torch_threads=os.cpu_count() or 1,
        # Random weights loop on every sentence: retrying them all with beam 4 would measure
        # the guard, not the backlog (the stage-efficiency figure above covers retries).
        retry_beams=0,
    )
    settings = replace(
        load_settings(models_dir=models, registry_path=Path(args.registry)), translate=ts
    )
    pool = sentences(args.articles * args.per_article)
    segs = [
        Segment(f"art{a}", s, 0, pool[a * args.per_article + s], "he")
        for a in range(args.articles)
        for s in range(args.per_article)
    ]
    db = Path(args.workdir) / f"mem-{args.engine}.duckdb"
    db.unlink(missing_ok=True)
    con = duckdb.connect(str(db))
    warehouse.migrate(con, ROOT / "warehouse")
    cache = DuckDBTranslationCache(con)
    engines: dict[str, Any] = {}
    loaded = [0, 0]

    def load(rows: list[Any]) -> None:  # streamed: each chunk loaded as it comes, as run.py should
        warehouse.load_translations(con, rows)
        loaded[0] += len(rows)

    def count(rows: list[Any]) -> None:
        loaded[1] += len(rows)

    (_, r1), first = timed(
        lambda: translate_segments(segs, settings, cache, engines=engines, on_chunk=load)
    )
    (_, r2), second = timed(
        lambda: translate_segments(segs, settings, cache, engines=engines, on_chunk=count)
    )
    assert loaded == [len(segs), len(segs)], loaded
    peak = peak_rss_mib()
    print(
        json.dumps(
            {
                "articles": args.articles,
                "segments": len(segs),
                "first_s": first,
                "second_s": second,
                "translated": r1.counts["translated"],
                "cache_hits": r2.counts["cache_hits"],
                "peak_rss_mib": peak,
            }
        )
    )


def run_memory(
    engine: str, articles: int, work: Path, registry: Path, models: Path, best: dict[str, int]
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--memory-child",
        "--engine",
        engine,
        "--articles",
        str(articles),
        "--workdir",
        str(work),
        "--registry",
        str(registry),
        "--models-dir",
        str(models),
        "--inter",
        str(best["inter"]),
        "--intra",
        str(best["intra"]),
        "--max-batch-tokens",
        str(best["tokens"]),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else "")
    p.add_argument("--quick", action="store_true", help="small sizes: runs in under 2 minutes")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "parallax-bench"))
    p.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--engine", default="ctranslate2", help=argparse.SUPPRESS)
    p.add_argument("--articles", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--per-article", type=int, default=10, help=argparse.SUPPRESS)
    p.add_argument("--new-tokens", type=int, default=8, help=argparse.SUPPRESS)
    p.add_argument("--registry", default="", help=argparse.SUPPRESS)
    p.add_argument("--models-dir", default="", help=argparse.SUPPRESS)
    p.add_argument("--inter", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--intra", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--max-batch-tokens", type=int, default=2048, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.memory_child:
        memory_child(args)
        return

    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    from pipeline.settings import TranslateSettings
    from pipeline.translate.convert import convert_model, converted_folder
    from pipeline.translate.engines import CTranslate2Engine, MarianEngine

    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    work = Path(args.workdir)
    models = work / "models"
    folder = build_opus_sized(models / HF_ID.replace("/", "--"))
    for q in ("int8", "none"):
        if not (converted_folder(folder, q) / "model.bin").is_file():
            _, secs = timed(lambda q=q: convert_model(folder, converted_folder(folder, q), q))
            print(f"converted {q}: {secs:.1f}s")
    registry = work / "registry.toml"
    registry.write_text(
        f'[[model]]\npair = "he-en"\nsrc = "he"\ntgt = "en"\nhf_id = "{HF_ID}"\n'
        'revision = "bench"\nengine = "ctranslate2"\nquantization = "int8"\n',
        encoding="utf-8",
    )

    gpu = args.device == "cuda"
    n_sent, length = (32, 16) if args.quick else (64, 32)
    src = sentences(n_sent)
    base = TranslateSettings(batch_size=64, max_new_tokens=length, torch_threads=cores)
    fast_ct = "float16" if gpu else "int8"
    tokens_total = n_sent * length
    print(f"device={args.device} cores={cores} sentences={n_sent} forced_length={length}")

    # --- thread layout and batch budget for CTranslate2, by measurement
    grid_layouts = [(1, cores), (cores, 1)] if cores > 1 else [(1, 1)]
    grid_tokens = [2048] if args.quick else [1024, 2048, 4096]
    if gpu:
        grid_layouts, grid_tokens = [(1, 1)], [4096, 8192]
    best: dict[str, Any] = {}
    print(f"\nCTranslate2 grid (greedy, {fast_ct}):  inter intra max_batch_tokens  tok/s")
    for inter, intra in grid_layouts:
        for budget in grid_tokens:
            ts = replace(base, inter_threads=inter, intra_threads=intra, max_batch_tokens=budget)
            eng = CTranslate2Engine(
                converted_folder(folder, "int8"),
                folder,
                spec(),
                ts,
                device=args.device,
                compute_type=fast_ct,
            )
            eng.generate_tokens(src[:8], min_new_tokens=length)  # warm-up
            _, secs = timed(lambda e=eng: e.generate_tokens(src, min_new_tokens=length))
            rate = tokens_total / secs
            print(f"  {inter:5d} {intra:5d} {budget:16d}  {rate:8.0f}")
            if rate > best.get("rate", 0):
                best = {"rate": rate, "inter": inter, "intra": intra, "tokens": budget}
    tuned = replace(
        base,
        inter_threads=best["inter"],
        intra_threads=best["intra"],
        max_batch_tokens=best["tokens"],
    )

    # --- the same sentences, forced equal length, both engines, greedy and beam 4
    ref = MarianEngine(folder, spec(), replace(base, max_batch_tokens=64 * 512), device=args.device)
    fast = CTranslate2Engine(
        converted_folder(folder, "int8"),
        folder,
        spec(),
        tuned,
        device=args.device,
        compute_type=fast_ct,
    )
    ref.generate_ids(src[:4], min_new_tokens=length)  # warm-up
    rates: dict[tuple[str, int], float] = {}
    outputs: dict[str, Any] = {}
    for beams in (1, 4):
        ids, secs = timed(lambda b=beams: ref.generate_ids(src, num_beams=b, min_new_tokens=length))
        assert all(len(i) == length for i in ids), "transformers did not honour the forced length"
        rates[("transformers", beams)] = tokens_total / secs
        toks, secs = timed(
            lambda b=beams: fast.generate_tokens(src, num_beams=b, min_new_tokens=length)
        )
        assert all(len(t) == length for t in toks), "CTranslate2 did not honour the forced length"
        rates[("ctranslate2", beams)] = tokens_total / secs
        if beams == 1:
            outputs["int8"] = toks
    tf_name = "transformers fp16" if gpu else "transformers f32"
    print(f"\n{'engine':28s} {'greedy tok/s':>13s} {'beam4 tok/s':>12s}")
    print(f"{tf_name:28s} {rates[('transformers', 1)]:13.0f} {rates[('transformers', 4)]:12.0f}")
    ct_name = f"ctranslate2 {fast_ct} ({best['inter']}x{best['intra']}, {best['tokens']} tok)"
    print(f"{ct_name:28s} {rates[('ctranslate2', 1)]:13.0f} {rates[('ctranslate2', 4)]:12.0f}")
    greedy_speedup = rates[("ctranslate2", 1)] / rates[("transformers", 1)]
    beam_speedup = rates[("ctranslate2", 4)] / rates[("transformers", 4)]
    print(f"speedup: greedy {greedy_speedup:.2f}x  beam4 {beam_speedup:.2f}x")

    # --- exactness: float32 CTranslate2 vs float32 transformers, greedy, token for token
    check = src[: 16 if args.quick else 32]
    ref32 = ref if not gpu else MarianEngine(folder, spec(), base, device="cpu")
    f32 = CTranslate2Engine(
        converted_folder(folder, "none"),
        folder,
        spec(),
        tuned,
        device="cpu",
        compute_type="float32",
    )
    tf_tokens = [
        ref32.tokenizer.convert_ids_to_tokens(i)
        for i in ref32.generate_ids(check, min_new_tokens=length, forced_eos=False)
    ]
    ct_tokens = f32.generate_tokens(check, min_new_tokens=length)
    f32_identical = tf_tokens == ct_tokens
    int8_agreement = agreement(outputs["int8"][: len(check)], ct_tokens)
    print(f"f32 identical: {f32_identical}  int8 agreement with f32: {int8_agreement:.3f}")

    # --- stage efficiency: the whole translate stage vs the raw engine on the same sentences
    import duckdb

    from pipeline import warehouse
    from pipeline.records import Segment
    from pipeline.settings import load_settings
    from pipeline.translate import translate_segments
    from pipeline.translate.cache import DuckDBTranslationCache

    stage_settings = replace(
        load_settings(models_dir=models, registry_path=registry),
        translate=replace(tuned, engine="ctranslate2"),
    )
    raw, raw_s = timed(lambda: fast.translate(src))
    con = duckdb.connect(":memory:")
    warehouse.migrate(con, ROOT / "warehouse")
    segs = [Segment(f"a{i // 10}", i % 10, 0, s, "he") for i, s in enumerate(src)]

    def stage() -> Any:
        rows, result = translate_segments(
            segs, stage_settings, DuckDBTranslationCache(con), engines={"he": fast}
        )
        warehouse.load_translations(con, rows)
        return result

    result, stage_s = timed(stage)
    retry_s = result.counts["retry_ms"] / 1000
    overall = raw_s / stage_s
    stage_efficiency = raw_s / max(1e-9, stage_s - retry_s)
    print(
        f"stage: raw engine {raw_s:.2f}s, whole stage {stage_s:.2f}s, of which guard retries "
        f"{retry_s:.2f}s (retried {result.counts['retried']}, flagged {result.counts['flagged']})"
    )
    print(
        f"  stage_efficiency {stage_efficiency:.2f} without retries, {overall:.2f} with them "
        "(random weights loop on every sentence, so every one is retried with beam 4; a trained "
        "model retries few)"
    )

    # --- backlog: second pass over translated articles; peak memory, each engine in its own process
    backlog = 100 if args.quick else 1000
    print("\nbacklog (10 sentences/article, 8 new tokens each, own process, DuckDB file):")
    print(
        f"{'engine':14s} {'articles':>8s} {'1st pass s':>10s} {'2nd pass s':>10s} "
        f"{'ratio':>6s} {'peak MiB':>9s}"
    )
    mem: dict[str, list[dict[str, Any]]] = {}
    sizes = {"ctranslate2": [backlog // 2, backlog], "transformers": [backlog // 10, backlog // 5]}
    for engine, counts in sizes.items():
        for n in counts:
            r = run_memory(engine, n, work, registry, models, best)
            mem.setdefault(engine, []).append(r)
            print(
                f"{engine:14s} {n:8d} {r['first_s']:10.1f} {r['second_s']:10.2f} "
                f"{r['second_s'] / r['first_s']:6.3f} {r['peak_rss_mib']:9.0f}"
            )
    second_ratio = mem["ctranslate2"][-1]["second_s"] / mem["ctranslate2"][-1]["first_s"]
    for engine, rs in mem.items():
        (a, b), (ma, mb) = [r["articles"] for r in rs], [r["peak_rss_mib"] for r in rs]
        # Translations stream into the warehouse chunk by chunk (CHUNK_SENTENCES), so the peak
        # should not grow with the backlog once a chunk is full; growth beyond noise is reported.
        slope = max(0.0, (mb - ma) / (b - a)) if b != a else 0.0
        print(
            f"  {engine}: peak {ma:.0f} MiB at {a} articles, {mb:.0f} MiB at {b}; growth "
            f"{slope * 1000:.0f} MiB per 1,000 articles; at 5,000 articles "
            f"<= {mb + slope * (5000 - b):.0f} MiB if that growth continued"
        )
    print(f"second pass / first pass ({backlog} articles, ctranslate2): {second_ratio:.3f}")
    shutil.rmtree(work / "mem-ctranslate2.duckdb", ignore_errors=True)
    print(
        f"greedy_speedup={greedy_speedup:.2f} beam4_speedup={beam_speedup:.2f} "
        f"f32_identical={str(f32_identical).lower()} int8_agreement={int8_agreement:.3f} "
        f"stage_efficiency={stage_efficiency:.2f}"
    )


if __name__ == "__main__":
    main()
