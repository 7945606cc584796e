"""`parallax models shortlist`: build, install and check a vocabulary shortlist for a pair."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from pipeline.settings import Settings
    from pipeline.translate.engines import CTranslate2Engine

WAREHOUSE_LIMIT = 50_000  # distinct sentences read from the warehouse at most


def _engine(settings: Settings, pair: str) -> CTranslate2Engine:
    """The pair's CTranslate2 engine on the full vocabulary (converted on first use)."""
    from pipeline.translate.convert import (
        check_converted_folder,
        convert_model,
        converted_folder,
        describe_missing_conversion,
    )
    from pipeline.translate.engines import CTranslate2Engine, ct2_device
    from pipeline.translate.registry import (
        check_model_folder,
        describe_problems,
        load_registry,
        model_folder,
    )
    from pipeline.translate.shortlist import ShortlistError

    registry = load_registry(settings.registry_path, settings.translate.tier)
    specs = {s.pair: s for s in registry.values()}
    if pair not in specs:
        raise ShortlistError(f"no model for pair {pair!r} in the registry; one of {sorted(specs)}")
    spec = specs[pair]
    folder = model_folder(settings.models_dir, spec)
    problems = check_model_folder(folder)
    if problems:
        raise ShortlistError(describe_problems(spec, folder, problems))
    q = spec.quantization if spec.quantization not in ("", "none") else "int8"
    ct2 = converted_folder(folder, q)
    if check_converted_folder(ct2):
        if not settings.translate.auto_convert:
            raise ShortlistError(
                describe_missing_conversion(spec, ct2, check_converted_folder(ct2))
            )
        convert_model(folder, ct2, q)
    device = ct2_device()
    return CTranslate2Engine(
        ct2,
        folder,
        spec,
        settings.translate,
        device=device,
        compute_type="float16" if device == "cuda" else q,
    )


def _warehouse_sentences(settings: Settings, lang: str) -> list[str]:
    from pipeline import warehouse

    with warehouse.open_warehouse(settings, read_only=True) as con:
        rows = con.execute(
            "SELECT DISTINCT text FROM segments WHERE lang = ? AND trim(text) <> '' LIMIT ?",
            [lang, WAREHOUSE_LIMIT],
        ).fetchall()
    return [r[0] for r in rows]


def models_shortlist(
    pair: Annotated[str, typer.Option(help="Language pair, e.g. he-en")],
    from_warehouse: Annotated[
        bool, typer.Option("--from-warehouse", help="Build from the warehouse's segments")
    ] = False,
    corpus: Annotated[
        Path | None, typer.Option(help="Build from a text file, one source sentence a line")
    ] = None,
    size: Annotated[int, typer.Option(help="Most frequent target pieces, always allowed")] = 2000,
    per_source: Annotated[int, typer.Option(help="Target pieces kept per source piece")] = 20,
    check: Annotated[
        bool,
        typer.Option(help="Translate a held-back tenth both ways; record exact match and chrF"),
    ] = True,
) -> None:
    """Build the vocabulary shortlist (vmap.txt) from the model's own translations and install it.

    The stage uses it only with translate.use_vmap = true and a recorded check whose chrF against
    full-vocabulary output reaches translate.vmap_min_chrf.
    """
    from pipeline.cli import _settings, console, out
    from pipeline.translate.shortlist import ShortlistError, build_shortlist

    if from_warehouse == (corpus is not None):
        console.print("[red]give exactly one of --from-warehouse or --corpus FILE[/red]")
        raise typer.Exit(2)
    settings = _settings()
    try:
        engine = _engine(settings, pair)
        if corpus is not None:
            if not corpus.is_file():
                raise ShortlistError(f"corpus file {corpus} does not exist")
            lines = corpus.read_text(encoding="utf-8").splitlines()
            built_from = f"corpus:{corpus}"
        else:
            lines = _warehouse_sentences(settings, pair.split("-")[0])
            built_from = f"warehouse:{settings.warehouse}"
        console.print(f"translating {len(lines)} sentences with the full vocabulary …")
        result = build_shortlist(
            engine, lines, size=size, per_source=per_source, check=check, built_from=built_from
        )
    except ShortlistError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    out.print(
        f"{result.folder / 'vmap.txt'}: {result.always} pieces always on, "
        f"{result.source_pieces} source pieces mapped, from {result.sentences} sentences "
        f"in {result.seconds:.1f}s",
        highlight=False,
        soft_wrap=True,
    )
    c = result.check
    if c is None:
        console.print(
            "[yellow]not checked[/yellow]: the stage will not use it until "
            f"`parallax models shortlist --pair {pair} --check` records its agreement"
        )
        return
    bar = settings.translate.vmap_min_chrf
    verdict = "passes" if c.chrf >= bar else "is below"
    out.print(
        f"check on {c.sentences} {'held-back ' if c.held_back else ''}sentences: "
        f"exact_match={c.exact_match:.3f} chrf={c.chrf:.3f} ({verdict} translate.vmap_min_chrf "
        f"= {bar:.2f}); full vocabulary {c.full_seconds:.2f}s, shortlist {c.vmap_seconds:.2f}s",
        highlight=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    from pipeline.cli import models_app

    models_app.command("shortlist")(models_shortlist)
