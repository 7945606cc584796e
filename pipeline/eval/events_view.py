"""How `parallax eval events` shows its diagnostics: a table per language pair, then the worst
split and merged pairs with titles, outlets, score and threshold."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from pipeline.eval.events import Diagnostics, PairError

TITLE_CHARS = 60


def _title(side: tuple[str, str, str]) -> str:
    outlet, lang, title = side
    title = " ".join(title.split())
    if len(title) > TITLE_CHARS:
        title = title[: TITLE_CHARS - 1] + "…"
    return f"[{lang}] {outlet}: {title}"


def _errors_table(kind: str, errors: list[PairError]) -> object:
    from rich.table import Table

    table = Table("score", "thr", "hours", "article a", "article b", "gold", title=kind)
    for e in errors:
        gold = e.gold[0] if e.gold[0] == e.gold[1] else f"{e.gold[0]} / {e.gold[1]}"
        table.add_row(
            f"{e.score:.3f}", f"{e.threshold:.2f}", f"{e.hours:.0f}", _title(e.a), _title(e.b), gold
        )
    return table


def print_diagnostics(diag: Diagnostics, out: Console) -> None:
    from rich.table import Table

    table = Table(
        "pair", "gold pairs", "predicted", "correct", "pairwise P", "pairwise R",
        title=f"{diag.signal}: pairwise precision/recall per language pair",
    )  # fmt: skip
    for row in diag.pairs:
        table.add_row(
            row.langs,
            str(row.gold_pairs),
            str(row.predicted_pairs),
            str(row.correct),
            f"{row.precision:.3f}",
            f"{row.recall:.3f}",
        )
    out.print(table)
    if diag.splits:
        out.print(
            _errors_table(
                "worst splits (same gold event, apart; closest to joining first; "
                "score of one article against the other alone)",
                diag.splits,
            )
        )
    if diag.merges:
        out.print(_errors_table("worst merges (different gold events, together)", diag.merges))
