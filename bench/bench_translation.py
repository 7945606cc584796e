"""Translation throughput: transformers vs CTranslate2 on an OPUS-MT-sized Marian model.

Run inside the project's environment:  .venv/bin/python bench/bench_translation.py [--quick]
[--sentences 512] [--forced-length 32] [--skip-backlog] [--device cuda]. It builds a randomly
initialised MarianMT with the OPUS-MT he-en dimensions (d_model 512, 6+6 layers, 8 heads, FFN
2048, 64,001-entry vocabulary), converts it to CTranslate2 (int8, int8_float32, float32) and, on
a backlog of distinct sentences with a news-like length mix (5-60 source pieces), in one run:
picks CTranslate2's compute type, thread layout and batching by measurement; times both engines
on the same sentences with equal forced output length, greedy and beam 4, with and without a
vocabulary shortlist; checks float32 output token for token; decodes unforced (wall-clock per
1,000 articles, with and without the length cap); and compares the whole stage with the raw
engine. The hardware limit is this CPU's int8 multiply-add peak (``cpu_int8_peak``) over the
model's multiply-adds per generated token (``macs_per_token``). The last line is machine-readable:
greedy_speedup=X beam4_speedup=Y f32_identical=true|false int8_agreement=Z stage_efficiency=W
greedy_speedup_vmap=X vmap_agreement=Y tok_s_ct2=Z tok_s_limit=W
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


def backlog_sentences(count: int, count_tokens: Any, seed: int = 1) -> list[str]:
    """Distinct sentences whose source lengths follow a news-like mix of 5-60 pieces.

    Lengths are drawn log-normally (median ~25 pieces, as news sentences), clipped to 5-60;
    each sentence is a run of corpus words, cut at the last word that keeps it within length.
    """
    import random

    from tests.tiny_marian import corpus_lines

    words = " ".join(ln for ln in corpus_lines() if not ln[0].isascii()).split()
    rng = random.Random(seed)
    out: list[str] = []
    for i in range(count):
        want = min(60, max(5, int(rng.lognormvariate(3.2, 0.5))))
        start = rng.randrange(len(words))
        text, n = str(i), 0  # the number keeps every sentence distinct
        while True:
            longer = f"{text} {words[(start + n) % len(words)]}"
            if n and count_tokens([longer])[0] > want:  # at least one word
                break
            text, n = longer, n + 1
        out.append(text)
    return out


def cpu_int8_peak() -> dict[str, Any]:
    """This CPU's int8 multiply-add peak, from /proc/cpuinfo flags, usable cores and clock.

    Multiply-adds per cycle per core = vector bytes × vector-integer multiply ports / instructions
    per multiply-add: VNNI's VPDPBUSD does u8×s8 products and their sum in one instruction, AVX2
    and AVX-512BW need two (VPMADDUBSW then VPMADDWD). 256-bit units count two ports (Intel
    since Haswell, AMD Zen); 512-bit ones one (ports 0+1 fused; a second FMA unit on some Xeons
    is not assumed). So: avx512_vnni 64, avx_vnni 64, avx512bw 32, avx2 32, otherwise 8 (SSE).
    Clock: cpuinfo_max_freq when the kernel exposes it, else the mean "cpu MHz" of /proc/cpuinfo
    (under a hypervisor, the nominal clock). Peak = cores × clock × multiply-adds per cycle.
    """
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    flags: set[str] = set()
    mhz: list[float] = []
    model = ""
    for line in info.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "flags" and not flags:
            flags = set(value.split())
        elif key == "cpu MHz":
            mhz.append(float(value))
        elif key == "model name" and not model:
            model = value.strip()
    table = [
        ("avx512_vnni", 64, "512-bit VPDPBUSD, 1 port"),
        ("avx_vnni", 64, "256-bit VPDPBUSD, 2 ports"),
        ("avx512bw", 32, "512-bit VPMADDUBSW+VPMADDWD, 1 port"),
        ("avx2", 32, "256-bit VPMADDUBSW+VPMADDWD, 2 ports"),
    ]
    isa, per_cycle, how = next(
        ((f, n, h) for f, n, h in table if f in flags), ("sse", 8, "128-bit, 1 port")
    )
    max_freq = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if max_freq.is_file():
        ghz, clock_from = int(max_freq.read_text()) / 1e6, "cpuinfo_max_freq"
    else:
        ghz, clock_from = (sum(mhz) / len(mhz) / 1000 if mhz else 2.0), "cpu MHz"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    return {
        "model": model,
        "isa": isa,
        "macs_per_cycle": per_cycle,
        "how": how,
        "ghz": ghz,
        "clock_from": clock_from,
        "cores": cores,
        "peak_gmacs": cores * ghz * per_cycle,
    }


def macs_per_token(cfg: Any, src_len: float, tgt_len: float) -> dict[str, float]:
    """Multiply-adds per generated token of a Marian transformer, greedy, with its caches.

    Decoder, per token and layer: self-attention Q/K/V/O 4·d², cross-attention Q/O 2·d², FFN
    2·d·ffn, attention scores and mixing 2·d·(position) + 2·d·src_len; then the output layer
    d·V. Encoder, per source token and layer: 4·d² + 2·d·ffn + 2·d·src_len, plus the
    cross-attention K/V of every decoder layer 2·d²; spread over the tgt_len generated tokens.
    """
    d, ffn, vocab = cfg.d_model, cfg.decoder_ffn_dim, cfg.vocab_size
    dec_layer = 4 * d * d + 2 * d * d + 2 * d * ffn + 2 * d * (tgt_len / 2) + 2 * d * src_len
    output = d * vocab
    decoder = cfg.decoder_layers * dec_layer + output
    enc_token = (
        cfg.encoder_layers * (4 * d * d + 2 * d * cfg.encoder_ffn_dim + 2 * d * src_len)
        + cfg.decoder_layers * 2 * d * d
    )
    encoder = enc_token * src_len / max(1.0, tgt_len)
    return {"decoder": decoder, "output": output, "encoder": encoder, "total": decoder + encoder}


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


def ct2_rate(
    translator: Any,
    source: list[list[str]],
    *,
    forced: int,
    beams: int = 1,
    batch_type: str = "tokens",
    size: int = 2048,
    use_vmap: bool = False,
    per_call: int = 0,
) -> tuple[float, list[list[str]]]:
    """Generated tokens per second of one raw ``translate_batch`` configuration, forced length.

    ``per_call`` > 0 feeds the sentences in arrival order, that many per call (no sorting
    across calls), as a stage that batched without sorting would.
    """
    calls = (
        [source]
        if per_call <= 0
        else [source[i : i + per_call] for i in range(0, len(source), per_call)]
    )
    started = time.perf_counter()
    out: list[list[str]] = []
    for chunk in calls:
        results = translator.translate_batch(
            chunk,
            max_batch_size=size,
            batch_type=batch_type,
            beam_size=beams,
            max_decoding_length=forced,
            min_decoding_length=forced,
            use_vmap=use_vmap,
        )
        out.extend(r.hypotheses[0] for r in results)
    secs = time.perf_counter() - started
    return sum(len(t) for t in out) / secs, out


def padded_map(pairs: list[tuple[list[str], list[str]]], vocab: list[str], size: int, per: int):
    """The shortlist of the model's own translations, topped up to a real shortlist's size.

    Random weights repeat a few pieces, so their own map would be far smaller than a trained
    model's and its speed flattering; the always-on list is filled to ``size`` pieces and each
    source piece to ``per`` candidates with pieces drawn from the vocabulary (fixed seed).
    """
    import random

    from pipeline.translate.shortlist import VocabularyMap, build_vocabulary_map

    own = build_vocabulary_map(pairs, size=size, per_source=per)
    rng = random.Random(0)
    pieces = [v for v in vocab if v not in ("</s>", "<unk>", "<s>")]
    always = list(own.always)
    for piece in pieces:
        if len(always) >= size:
            break
        if piece not in always:
            always.append(piece)
    by_source = {
        s: (t + rng.sample(pieces, max(0, per - len(t))))[:per] for s, t in own.by_source.items()
    }
    return VocabularyMap(always, by_source)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else "")
    p.add_argument("--quick", action="store_true", help="128 sentences, 16 tokens, small grid")
    p.add_argument("--sentences", type=int, default=512, help="distinct backlog sentences")
    p.add_argument("--forced-length", type=int, default=32, help="tokens every sentence decodes")
    p.add_argument("--skip-backlog", action="store_true", help="skip the memory/backlog section")
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
    import ctranslate2
    import torch
    from transformers import MarianConfig
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    from pipeline.settings import TranslateSettings
    from pipeline.translate.convert import convert_model, converted_folder
    from pipeline.translate.engines import CTranslate2Engine, MarianEngine
    from pipeline.translate.shortlist import check_agreement, install_map

    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    work = Path(args.workdir)
    models = work / "models"
    folder = build_opus_sized(models / HF_ID.replace("/", "--"))
    for q in ("int8", "none", "int8_float32"):
        if not (converted_folder(folder, q) / "model.bin").is_file():
            _, secs = timed(lambda q=q: convert_model(folder, converted_folder(folder, q), q))
            print(f"converted {q}: {secs:.1f}s")
    int8_dir = converted_folder(folder, "int8")
    (int8_dir / "vmap.txt").unlink(missing_ok=True)
    registry = work / "registry.toml"
    registry.write_text(
        f'[[model]]\npair = "he-en"\nsrc = "he"\ntgt = "en"\nhf_id = "{HF_ID}"\n'
        'revision = "bench"\nengine = "ctranslate2"\nquantization = "int8"\n',
        encoding="utf-8",
    )

    gpu = args.device == "cuda"
    n_sent = min(128, args.sentences) if args.quick else args.sentences
    length = 16 if args.quick else args.forced_length
    base = TranslateSettings(
        batch_size=64, max_new_tokens=length, torch_threads=cores, max_length_factor=0
    )
    fast_ct = "float16" if gpu else "int8"
    probe = CTranslate2Engine(int8_dir, folder, spec(), base, device=args.device)
    src = backlog_sentences(n_sent, probe.count_tokens)
    source = probe.source_pieces(src)
    lens = sorted(len(x) for x in source)
    tokens_total = n_sent * length
    load = os.getloadavg()
    cpu = cpu_int8_peak()
    print(
        f"device={args.device} cores={cores} sentences={n_sent} (distinct "
        f"{len(set(src))}) source pieces min/median/max {lens[0]}/{lens[len(lens) // 2]}/"
        f"{lens[-1]} forced_length={length} load average {load[0]:.1f} {load[1]:.1f}"
    )

    # --- the hardware limit: multiply-adds per generated token and this CPU's int8 peak
    cfg = MarianConfig.from_pretrained(str(folder))
    macs = macs_per_token(cfg, sum(lens) / len(lens), length)
    limit = cpu["peak_gmacs"] * 1e9 / macs["total"]
    print(
        f"CPU {cpu['model']}: {cpu['isa']} ({cpu['how']}) = {cpu['macs_per_cycle']} int8 "
        f"multiply-adds/cycle/core x {cpu['cores']} cores x {cpu['ghz']:.2f} GHz "
        f"({cpu['clock_from']}) = {cpu['peak_gmacs']:.0f} G/s"
    )
    print(
        f"per generated token: decoder {macs['decoder'] / 1e6:.1f}M (output layer "
        f"{macs['output'] / 1e6:.1f}M) + encoder share {macs['encoder'] / 1e6:.1f}M = "
        f"{macs['total'] / 1e6:.1f}M multiply-adds -> limit {limit:.0f} tok/s"
    )

    # --- CTranslate2 configurations by measurement, greedy, on a length-stratified subset
    grid_src = source[:: max(1, n_sent // (32 if args.quick else 128))]
    layouts = [(1, cores), (cores, 1)] if cores > 1 else [(1, 1)]
    batchings = [("tokens", 1024), ("tokens", 2048), ("tokens", 4096), ("examples", 32)]
    if args.quick:
        batchings = [("tokens", 2048), ("examples", 32)]
    if gpu:
        layouts, batchings = [(1, 1)], [("tokens", 4096), ("tokens", 8192)]
    compute_types = [fast_ct] if gpu else ["int8", "int8_float32"]
    translators: dict[tuple[str, int, int], Any] = {}

    def translator(ct: str, inter: int, intra: int) -> Any:
        key = (ct, inter, intra)
        if key not in translators:
            q_dir = converted_folder(folder, "int8" if ct != "int8_float32" else ct)
            translators[key] = ctranslate2.Translator(
                str(q_dir),
                device=args.device,
                compute_type=ct,
                inter_threads=inter,
                intra_threads=intra,
            )
            translators[key].translate_batch(grid_src[:4], max_decoding_length=4)  # warm-up
        return translators[key]

    print(
        f"\nCTranslate2 grid ({len(grid_src)} sentences, greedy, {length} tokens each): "
        "compute inter intra batching  tok/s"
    )
    best: dict[str, Any] = {}
    for ct in compute_types:
        for inter, intra in layouts:
            for btype, size in batchings:
                rate, _ = ct2_rate(
                    translator(ct, inter, intra),
                    grid_src,
                    forced=length,
                    batch_type=btype,
                    size=size,
                )
                print(f"  {ct:12s} {inter:5d} {intra:5d} {btype:>8s} {size:5d}  {rate:8.0f}")
                if rate > best.get("rate", 0):
                    best = {
                        "rate": rate,
                        "ct": ct,
                        "inter": inter,
                        "intra": intra,
                        "type": btype,
                        "size": size,
                    }
    tr = translator(best["ct"], best["inter"], best["intra"])
    unsorted, _ = ct2_rate(
        tr, grid_src, forced=length, batch_type=best["type"], size=best["size"], per_call=32
    )
    print(f"  best, but 32 sentences per call in arrival order (unsorted): {unsorted:.0f}")
    # The engine batches by tokens (max_batch_tokens) and sentences (batch_size) at once.
    tuned = replace(
        base,
        inter_threads=best["inter"],
        intra_threads=best["intra"],
        max_batch_tokens=best["size"] if best["type"] == "tokens" else 64 * 64,
        batch_size=best["size"] if best["type"] == "examples" else 1024,
    )
    ct_type = best["ct"]
    ct_dir = converted_folder(folder, "int8" if ct_type != "int8_float32" else ct_type)

    # --- the same sentences, forced equal length, both engines, greedy and beam 4
    ref = MarianEngine(folder, spec(), replace(base, max_batch_tokens=64 * 512), device=args.device)
    fast = CTranslate2Engine(
        ct_dir, folder, spec(), tuned, device=args.device, compute_type=ct_type
    )
    ref.generate_ids(src[:4], min_new_tokens=length)  # warm-up
    fast.generate_tokens(src[:4], min_new_tokens=length)
    beam_src = src[::2]  # beam 4 on every other sentence: the same ones for both engines
    rates: dict[tuple[str, int], float] = {}
    outputs: dict[str, Any] = {}
    for beams, batch in ((1, src), (4, beam_src)):
        total = len(batch) * length
        ids, secs = timed(
            lambda b=beams, x=batch: ref.generate_ids(x, num_beams=b, min_new_tokens=length)
        )
        assert all(len(i) == length for i in ids), "transformers did not honour the forced length"
        rates[("transformers", beams)] = total / secs
        toks, secs = timed(
            lambda b=beams, x=batch: fast.generate_tokens(x, num_beams=b, min_new_tokens=length)
        )
        assert all(len(t) == length for t in toks), "CTranslate2 did not honour the forced length"
        rates[("ctranslate2", beams)] = total / secs
        outputs[f"ct2-{beams}"] = toks

    # --- shortlist: built from the model's own greedy output on nine sentences in ten
    held = list(range(9, n_sent, 10))
    held_set = set(held)
    pairs = [(source[i], outputs["ct2-1"][i]) for i in range(n_sent) if i not in held_set]
    vocab = json.loads((ct_dir / "shared_vocabulary.json").read_text(encoding="utf-8"))
    vmap = padded_map(pairs, vocab, 2000, 20)
    install_map(ct_dir, vmap)
    short = CTranslate2Engine(
        ct_dir, folder, spec(), tuned, device=args.device, compute_type=ct_type, use_vmap=True
    )
    short.generate_tokens(src[:4], min_new_tokens=length)
    for beams, batch in ((1, src), (4, beam_src)):
        toks, secs = timed(
            lambda b=beams, x=batch: short.generate_tokens(x, num_beams=b, min_new_tokens=length)
        )
        rates[("vmap", beams)] = len(batch) * length / secs
        outputs[f"vmap-{beams}"] = toks
    candidates = [len(vmap.candidates(source[i])) for i in range(n_sent)]
    full_text = fast.decode([outputs["ct2-1"][i] for i in held])
    short_text = fast.decode([outputs["vmap-1"][i] for i in held])
    vmap_exact, vmap_chrf = check_agreement(full_text, short_text)
    vmap_tokens = agreement(
        [outputs["ct2-1"][i] for i in held], [outputs["vmap-1"][i] for i in held]
    )

    print(f"\n{'engine (same sentences)':34s} {'greedy tok/s':>13s} {'beam4 tok/s':>12s}")
    tf_name = "transformers fp16" if gpu else "transformers f32"
    ct_name = f"ctranslate2 {ct_type} {best['inter']}x{best['intra']} {best['type']} {best['size']}"
    for name, key in (
        (tf_name, "transformers"),
        (ct_name, "ctranslate2"),
        ("  + shortlist (vmap)", "vmap"),
    ):
        print(f"{name:34s} {rates[(key, 1)]:13.0f} {rates[(key, 4)]:12.0f}")
    greedy_speedup = rates[("ctranslate2", 1)] / rates[("transformers", 1)]
    greedy_vmap = rates[("vmap", 1)] / rates[("transformers", 1)]
    beam_speedup = rates[("ctranslate2", 4)] / rates[("transformers", 4)]
    print(
        f"speedup: greedy {greedy_speedup:.2f}x, with shortlist {greedy_vmap:.2f}x; "
        f"beam4 {beam_speedup:.2f}x (shortlist {rates[('vmap', 4)] / rates[('transformers', 4)]:.2f}x)"
    )
    print(
        f"shortlist: {len(vmap.always)} always + {20} per source piece, "
        f"{sum(candidates) / len(candidates):.0f} candidates per sentence on average of "
        f"{len(vocab)}; on {len(held)} held-back sentences vs full vocabulary: chrF "
        f"{vmap_chrf:.3f}, exact {vmap_exact:.3f}, tokens {vmap_tokens:.3f} (random weights: "
        "see the tiny-model tests and `parallax models shortlist --check` for real ones)"
    )
    tok_s_ct2 = rates[("ctranslate2", 1)]
    print(
        f"limit: {limit:.0f} tok/s; CTranslate2 greedy reaches {tok_s_ct2 / limit:.0%} of it "
        f"({rates[('vmap', 1)] / limit:.0%} with the shortlist, whose output layer is smaller)"
    )

    # --- exactness: float32 CTranslate2 vs float32 transformers, greedy, token for token
    check = src[:: max(1, n_sent // 8)]
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
    int8_agreement = agreement(outputs["ct2-1"][:: max(1, n_sent // 8)], ct_tokens)
    print(
        f"f32 identical ({len(check)} sentences): {f32_identical}  "
        f"int8 agreement with f32: {int8_agreement:.3f}"
    )

    # --- unforced: each engine decodes until </s> or its cap; wall-clock per 1,000 articles
    per_article = 10
    unforced = replace(tuned, max_new_tokens=256)
    print(
        f"\nunforced (every {max(1, n_sent // 32)}th sentence, articles of {per_article}; "
        "random weights never emit </s>, so every sentence runs to its cap):"
    )
    unforced_src = src[:: max(1, n_sent // 32)]  # a stride: every length, a bounded cost
    articles = len(unforced_src) / per_article
    for label, factor in (("max_new_tokens 256", 0.0), ("max_length_factor 3", 3.0)):
        eng = CTranslate2Engine(
            ct_dir,
            folder,
            spec(),
            replace(unforced, max_length_factor=factor),
            device=args.device,
            compute_type=ct_type,
        )
        toks, secs = timed(lambda e=eng: e.generate_tokens(unforced_src))
        made = sum(len(t) for t in toks)
        print(
            f"  ctranslate2, {label:20s} {made / len(unforced_src):6.1f} tokens/sentence  "
            f"{secs:7.1f}s  {secs / articles * 1000 / 60:7.1f} min per 1,000 articles"
        )
    tf_sub = src[:: max(1, n_sent // 2)]
    ref_capped = MarianEngine(
        folder,
        spec(),
        replace(base, max_new_tokens=256, max_length_factor=3.0),
        device=args.device,
    )
    ids, secs = timed(lambda: ref_capped.generate_ids(tf_sub))
    made = sum(len(i) for i in ids)
    print(
        f"  transformers, max_length_factor 3  {made / len(tf_sub):6.1f} tokens/sentence  "
        f"{secs / len(tf_sub) * per_article * 1000 / 60:7.1f} min per 1,000 articles "
        f"({len(tf_sub)} of the sentences)"
    )

    # --- Python-side work around the engine: tokenisation and detokenisation
    _, tok_s = timed(lambda: fast.source_pieces(src))
    _, detok_s = timed(lambda: fast.decode(outputs["ct2-1"]))
    engine_s = tokens_total / tok_s_ct2
    print(
        f"\npython side: tokenise {tok_s:.2f}s, detokenise {detok_s:.2f}s for {n_sent} "
        f"sentences = {(tok_s + detok_s) / (engine_s + tok_s + detok_s):.1%} of "
        f"tokenise + decode ({engine_s:.1f}s) + detokenise"
    )

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
    (ct_dir / "vmap.txt").unlink(missing_ok=True)

    if not args.skip_backlog:
        run_backlog(args, work, registry, models, best)
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(
        f"greedy_speedup={greedy_speedup:.2f} beam4_speedup={beam_speedup:.2f} "
        f"f32_identical={str(f32_identical).lower()} int8_agreement={int8_agreement:.3f} "
        f"stage_efficiency={stage_efficiency:.2f} greedy_speedup_vmap={greedy_vmap:.2f} "
        f"vmap_agreement={vmap_chrf:.3f} tok_s_ct2={tok_s_ct2:.0f} tok_s_limit={limit:.0f}"
    )


def run_backlog(
    args: argparse.Namespace, work: Path, registry: Path, models: Path, best: dict[str, Any]
) -> None:
    """Second pass over translated articles, and peak memory, each engine in its own process."""
    backlog = 100 if args.quick else 1000
    layout = {"inter": best["inter"], "intra": best["intra"], "tokens": 2048}
    print("\nbacklog (10 sentences/article, 8 new tokens each, own process, DuckDB file):")
    print(
        f"{'engine':14s} {'articles':>8s} {'1st pass s':>10s} {'2nd pass s':>10s} "
        f"{'ratio':>6s} {'peak MiB':>9s}"
    )
    mem: dict[str, list[dict[str, Any]]] = {}
    sizes = {"ctranslate2": [backlog // 2, backlog], "transformers": [backlog // 10, backlog // 5]}
    for engine, counts in sizes.items():
        for n in counts:
            r = run_memory(engine, n, work, registry, models, layout)
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


if __name__ == "__main__":
    main()
