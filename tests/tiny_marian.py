"""A tiny random MarianMT model laid out exactly like a downloaded opus-mt folder.

Random weights (fixed seed) and a sentencepiece model trained in-process on sentences written
below, so tests exercise the real loading and generation path without the hub. Its output is
nonsense; tests assert on shapes, caching, batching and determinism, never on meaning.
"""

from __future__ import annotations

import io
import itertools
import json
import shutil
import warnings
from pathlib import Path

# Registry ids the tiny model stands in for (must match models/registry.toml).
TINY_MODEL_IDS: tuple[str, ...] = ("Helsinki-NLP/opus-mt-he-en", "Helsinki-NLP/opus-mt-ar-en")

_HE_SUBJECTS = ["הממשלה", "הצבא", "ראש העיר", "השר", "הוועדה", "המשטרה", "הכנסת", "הדובר"]
_HE_VERBS = ["הודיע על", "דחה את", "אישר את", "בחן את", "פרסם את", "גינה את"]
_HE_OBJECTS = ["התוכנית החדשה", "ההסכם", "התקציב", "הדוח", "ההחלטה", "המבצע בצפון"]
_AR_SUBJECTS = ["الحكومة", "الجيش", "رئيس البلدية", "الوزير", "اللجنة", "الشرطة", "البرلمان"]
_AR_VERBS = ["أعلن عن", "رفض", "وافق على", "درس", "نشر", "أدان"]
_AR_OBJECTS = ["الخطة الجديدة", "الاتفاق", "الميزانية", "التقرير", "القرار", "العملية في الشمال"]
_EN_SUBJECTS = [
    "The government",
    "The army",
    "The mayor",
    "The minister",
    "The committee",
    "Police",
]
_EN_VERBS = ["announced", "rejected", "approved", "reviewed", "published", "condemned"]
_EN_OBJECTS = ["the new plan", "the agreement", "the budget", "the report", "the decision"]


def corpus_lines() -> list[str]:
    """A few hundred short news-like sentences in Hebrew, Arabic and English."""
    lines: list[str] = []
    for words in (
        (_HE_SUBJECTS, _HE_VERBS, _HE_OBJECTS),
        (_AR_SUBJECTS, _AR_VERBS, _AR_OBJECTS),
        (_EN_SUBJECTS, _EN_VERBS, _EN_OBJECTS),
    ):
        for n, (s, v, o) in enumerate(itertools.product(*words)):
            lines.append(f"{s} {v} {o}, {n % 28 + 1}/{n % 12 + 1}.")
    return lines


def _train_spm(vocab_size: int = 320) -> bytes:
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus_lines()),
        model_writer=buf,
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=1.0,
        hard_vocab_limit=False,
        num_threads=1,
        seed_sentencepiece_size=5000,
        minloglevel=2,
    )
    return buf.getvalue()


def build_tiny_marian(dest: Path) -> Path:
    """Write a complete tiny MarianMT folder (config, safetensors, spm, vocab) to ``dest``."""
    import sentencepiece as spm
    import torch
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    dest.mkdir(parents=True, exist_ok=True)
    spm_bytes = _train_spm()
    (dest / "source.spm").write_bytes(spm_bytes)
    (dest / "target.spm").write_bytes(spm_bytes)

    sp = spm.SentencePieceProcessor(model_proto=spm_bytes)
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    # opus-mt layout: </s> first, <unk> second, the pieces, <pad> last.
    vocab: dict[str, int] = {"</s>": 0, "<unk>": 1}
    for piece in pieces:
        if piece not in vocab and piece not in ("<s>", "<pad>"):
            vocab[piece] = len(vocab)
    vocab["<pad>"] = len(vocab)
    (dest / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")

    pad_id = vocab["<pad>"]
    config = MarianConfig(
        vocab_size=len(vocab),
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=256,
        pad_token_id=pad_id,
        decoder_start_token_id=pad_id,
        eos_token_id=0,
        forced_eos_token_id=0,
        scale_embedding=True,
        share_encoder_decoder_embeddings=True,
        init_std=0.5,  # large random weights: outputs differ from input to input
    )
    torch.manual_seed(0)
    model = MarianMTModel(config).eval()
    model.save_pretrained(dest)

    with warnings.catch_warnings():  # "Recommended: pip install sacremoses"
        warnings.simplefilter("ignore")
        tokenizer = MarianTokenizer(
            source_spm=str(dest / "source.spm"),
            target_spm=str(dest / "target.spm"),
            vocab=str(dest / "vocab.json"),
            source_lang="he",
            target_lang="en",
            model_max_length=256,
        )
    tokenizer.save_pretrained(dest)
    return dest


def make_models_dir(root: Path) -> Path:
    """A models folder holding the tiny model under every registry id, as downloads would."""
    root.mkdir(parents=True, exist_ok=True)
    first = build_tiny_marian(root / TINY_MODEL_IDS[0].replace("/", "--"))
    for hf_id in TINY_MODEL_IDS[1:]:
        target = root / hf_id.replace("/", "--")
        if not target.exists():
            shutil.copytree(first, target)
    return root
