"""The `parallax` command: every stage, the demo, models, SQL, export and evaluation."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from pipeline import warehouse
from pipeline.records import Outlet, StageResult
from pipeline.settings import Settings, load_settings

if TYPE_CHECKING:
    import duckdb


class _Group(TyperGroup):
    """The top command group: errors a user can act on become one line and an exit code."""

    def invoke(self, ctx: Any) -> Any:  # typer's (vendored) click Context
        try:
            return super().invoke(ctx)
        except Exception as exc:
            from pipeline.errors_cli import as_user_error

            err = as_user_error(exc)
            if err is None:
                raise
            if ctx.params.get("verbose"):
                console.print_exception()
            fix = f" [bold]fix:[/bold] {err.fix}" if err.fix else ""
            console.print(f"[red]error:[/red] {err.message}{fix}", soft_wrap=True, highlight=False)
            ctx.exit(err.exit_code)


app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, cls=_Group)
models_app = typer.Typer(no_args_is_help=True, help="Translation models: download, list.")
eval_app = typer.Typer(no_args_is_help=True, help="Evaluate alignment and translation.")
app.add_typer(models_app, name="models")
airflow_app = typer.Typer(no_args_is_help=True, help="Airflow deployment helpers.")
app.add_typer(eval_app, name="eval")
app.add_typer(airflow_app, name="airflow")

console = Console(stderr=True)
out = Console()


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, show_time=False)],
    )
    for noisy in ("httpx", "httpcore", "trafilatura", "urllib3", "filelock", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _settings() -> Settings:
    return load_settings()


def _outlets(settings: Settings, path: Path | None) -> list[Outlet]:
    from pipeline.errors import ConfigError, NoOutlets
    from pipeline.ingest.outlets import load_outlets

    source = path or settings.outlets_path
    add = (
        "`parallax outlets add ynet times-of-israel aljazeera-ar` (ids: `parallax outlets catalog`)"
    )
    if not source.is_file():
        raise NoOutlets(f"no outlets file at {source}", f"add outlets with {add}")
    try:
        outlets = load_outlets(source)
    except ValueError as exc:
        raise ConfigError(str(exc), f"correct {source}") from exc
    if not outlets:
        raise NoOutlets(f"no outlets configured in {source}", f"add some with {add}")
    return outlets


def _report(summary_stages: list[StageResult]) -> None:
    for res in summary_stages:
        figures = " ".join(f"{k}={v}" for k, v in sorted(res.counts.items()))
        took = f" ({res.seconds:.1f}s)" if res.seconds else ""
        console.print(f"[bold]{res.stage}[/bold]{took} {figures}")
        for rej in res.rejects[:10]:
            console.print(f"  [yellow]{rej.reason}[/yellow] {rej.url} {rej.detail[:120]}")
        if len(res.rejects) > 10:
            console.print(f"  … {len(res.rejects) - 10} more (see the rejects table)")


def _translate_with_progress(con: duckdb.DuckDBPyConnection, settings: Settings) -> StageResult:
    from rich.progress import Progress

    from pipeline.run import step_translate

    with Progress(console=console, disable=not console.is_terminal, transient=True) as bar:
        task = bar.add_task("translating", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return step_translate(con, settings, progress=progress)


_STAGE_LABELS = {
    "ingest": "fetching feeds and pages",
    "load": "loading articles",
    "segment": "segmenting",
    "translate": "translating",
    "embed": "embedding articles",
    "align": "aligning events",
    "embed_segments": "embedding sentences",
    "link": "linking sentences",
    "report": "refreshing the report site",
}


def _run_stages(outlets: list[Outlet], settings: Settings) -> list[StageResult]:
    """`run.run_all`, with a progress line per stage on a terminal."""
    from rich.progress import Progress

    from pipeline.run import run_all

    with Progress(console=console, disable=not console.is_terminal, transient=True) as bar:
        task = bar.add_task("starting", total=None)

        def on_start(stage: str) -> None:
            bar.update(task, description=_STAGE_LABELS.get(stage, stage), completed=0, total=None)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return run_all(outlets, settings, on_start=on_start, progress=progress).stages


@app.command()
def run(
    outlets: Annotated[
        Path | None, typer.Option(help="Outlets TOML (default: config/outlets.toml)")
    ] = None,
) -> None:
    """Run every stage over the configured outlets."""
    settings = _settings()
    stages = _run_stages(_outlets(settings, outlets), settings)
    _report(stages)


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Port for the sample server on 127.0.0.1")] = 8765,
    export_dir: Annotated[Path | None, typer.Option(help="Where the HTML export goes")] = None,
) -> None:
    """Serve the bundled sample on 127.0.0.1, run the whole pipeline, export the widest event."""
    from pipeline.export.side_by_side import load_event, write_export
    from pipeline.report import report_dir
    from pipeline.run import warehouse_summary
    from pipeline.sample_server import rebase, serve_samples

    settings = _settings()
    t0 = time.perf_counter()
    with serve_samples(settings.samples_dir / "site", port=port) as base:
        console.print(f"sample outlets served at {base}")
        sample = _outlets(settings, settings.samples_dir / "outlets.toml")
        outlets = [replace(o, feed_url=rebase(o.feed_url, base)) for o in sample]
        stages = _run_stages(outlets, settings)
    _report(stages)
    with warehouse.open_warehouse(settings) as con:
        summary = warehouse_summary(con)
        widest = con.execute(
            "SELECT event_id FROM events ORDER BY len(langs) DESC, len(outlets) DESC, size DESC, "
            "event_id LIMIT 1"
        ).fetchall()
        export_path = Path("")
        if widest:
            target = (export_dir or settings.runtime_dir / "exports") / f"event-{widest[0][0]}.html"
            export_path = write_export(load_event(con, widest[0][0]), "html", target)
    console.print(f"warehouse: {settings.warehouse}")
    console.print(f"export:    {export_path}")
    console.print(f"report:    {report_dir(settings) / 'index.html'}")
    console.print(f"done in {time.perf_counter() - t0:.1f}s")
    out.print(
        " ".join(f"{k}={v}" for k, v in summary.items())
        + f" warehouse={settings.warehouse} export={export_path}"
        + f" report={report_dir(settings) / 'index.html'}",
        soft_wrap=True,
        highlight=False,
    )


@app.command("serve-sample")
def serve_sample(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1")] = 8765,
) -> None:
    """Serve the bundled sample outlets on 127.0.0.1 until interrupted (for `parallax run`
    and the Airflow DAGs, whose default outlets point there)."""
    from pipeline.sample_server import serve_samples

    settings = _settings()
    with serve_samples(settings.samples_dir / "site", port=port) as base:
        console.print(f"sample outlets served at {base}; Ctrl-C stops")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


@app.command()
def ingest(
    outlets: Annotated[
        Path | None, typer.Option(help="Outlets TOML (default: config/outlets.toml)")
    ] = None,
    feeds: Annotated[
        list[Path] | None,
        typer.Option(help="Load saved feed files (a file, or a folder's *.xml) instead"),
    ] = None,
) -> None:
    """Fetch, extract, detect language and load articles (then segment them)."""
    from pipeline.run import step_ingest, step_load_articles, step_segment

    settings = _settings()
    if feeds:
        from pipeline.commands.status import ingest_feed_dirs

        figures = ingest_feed_dirs(settings, feeds)
        line = " ".join(
            f"{k}={figures[k]:.0f}" for k in ("files", "parsed", "quarantined", "crashed")
        )
        parsing, loading = figures["peak_rss_mib_parsing"], figures["peak_rss_mib_loading"]
        console.print(f"peak RSS: {parsing:.0f} MiB parsing, {loading:.0f} MiB loading")
        out.print(
            f"{line} peak_rss_mib={max(parsing, loading):.0f}", soft_wrap=True, highlight=False
        )
        return
    outlet_list = _outlets(settings, outlets)
    articles, result = step_ingest(outlet_list, settings)
    with warehouse.open_warehouse(settings) as con:
        stages = [
            result,
            step_load_articles(con, outlet_list, articles, result),
            step_segment(con, settings),
        ]
    _report(stages)


@app.command()
def translate(
    engine: Annotated[
        str | None, typer.Option(help="transformers or ctranslate2 (default: the registry's)")
    ] = None,
) -> None:
    """Translate every segment still pending (after `parallax models download`)."""
    settings = _settings()
    if engine:
        settings = replace(settings, translate=replace(settings.translate, engine=engine))
    with warehouse.open_warehouse(settings) as con:
        result = _translate_with_progress(con, settings)
    _report([result])
    if result.counts.get("pending"):
        _missing_models(settings)


def _missing_models(settings: Settings) -> None:
    """Raise ModelMissing naming the first unusable model, when one is the reason for pending."""
    from pipeline.errors import ModelMissing
    from pipeline.translate.download import list_models
    from pipeline.translate.registry import DOWNLOAD_COMMAND

    missing = [m for m in list_models(settings) if not m.present]
    if missing:
        m = missing[0]
        raise ModelMissing(
            f"model {m.hf_id} ({m.pair}) is not usable at {m.folder}: {m.problems[0]}; "
            "its sentences stay pending",
            f"run `{DOWNLOAD_COMMAND}`, or point PARALLAX_MODELS_DIR at a folder that has it",
        )


@app.command()
def align(
    rebuild: Annotated[
        bool, typer.Option(help="Re-cluster from scratch instead of placing only new articles")
    ] = False,
    since: Annotated[
        datetime | None, typer.Option(help="With --rebuild: only articles published since then")
    ] = None,
) -> None:
    """Place articles not yet in an event, then link sentences inside events."""
    from pipeline.run import step_align, step_link

    settings = _settings()
    with warehouse.open_warehouse(settings) as con:
        if rebuild:
            when = since.replace(tzinfo=since.tzinfo or UTC) if since else None
            dropped = warehouse.clear_events(con, when)
            console.print(f"rebuild: {dropped} assignment(s) cleared")
        _report([step_align(con, settings), step_link(con, settings)])


@app.command()
def sql(query: Annotated[str, typer.Argument(help="SQL to run against the warehouse")]) -> None:
    """Run a query (read-only) and print the result as a table."""
    import duckdb

    settings = _settings()
    if not warehouse.exists(settings):
        from pipeline.errors import NoWarehouse

        raise NoWarehouse(
            f"no warehouse at {settings.warehouse}",
            "run `parallax demo` (the bundled sample) or `parallax run` (your outlets) first",
        )
    with warehouse.open_warehouse(settings, read_only=True) as con:
        try:
            cur = con.execute(query)
            rows = cur.fetchall()
            names = [d[0] for d in cur.description or []]
        except duckdb.Error as exc:
            console.print(f"[red]{type(exc).__name__}[/red]: {exc}")
            raise typer.Exit(1) from exc
    table = Table(*names, show_lines=False)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    out.print(table)


@app.command()
def export(
    event: Annotated[str, typer.Option("--event", help="Event id (see the events table)")],
    fmt: Annotated[str, typer.Option("--format", help="html, csv, md or parquet")] = "html",
    out_path: Annotated[Path | None, typer.Option("--out", help="Output file")] = None,
) -> None:
    """Export an event as statement rows: HTML aligned page (statements x outlets), or the
    same rows one sentence per line as CSV, Markdown or Parquet."""
    from pipeline.export.side_by_side import FORMATS, load_event, write_export

    if fmt not in FORMATS:
        console.print(f"[red]unknown format {fmt!r}[/red]; choose one of {', '.join(FORMATS)}")
        raise typer.Exit(2)
    settings = _settings()
    with warehouse.open_warehouse(settings, read_only=True) as con:
        view = load_event(con, event)  # UnknownEvent: one line and the fix (errors_cli)
    target = out_path or settings.runtime_dir / "exports" / f"event-{event}.{fmt}"
    write_export(view, fmt, target)
    out.print(str(target))


@models_app.command("download")
def models_download(
    pair: Annotated[list[str] | None, typer.Option(help="Only these pairs, e.g. he-en")] = None,
    quick: Annotated[
        bool, typer.Option(help="Skip models already complete on disk without asking the hub")
    ] = False,
) -> None:
    """Fetch the registry's pinned models with huggingface_hub into the models folder."""
    from pipeline.translate.download import download_models

    settings = _settings()
    # The per-model warnings are summarised below: one line when the hub is unreachable.
    logging.getLogger("pipeline.translate.download").setLevel(logging.ERROR)
    results = download_models(settings, pairs=pair, quick=quick)
    failed = [r for r in results if not r.ok]
    unreachable = [r for r in failed if "cannot reach" in r.message]
    if failed and len(unreachable) == len(failed) == len(results):
        from pipeline.errors import HubUnreachable

        raise HubUnreachable(
            f"models not downloaded: {failed[0].message.split(' for ')[0]}; "
            "translations stay pending",
            "fetch them later with `parallax models download` (HF_ENDPOINT names a mirror), "
            "or set PARALLAX_MODELS_DIR to a folder of local models",
        )
    for r in results:
        colour = "green" if r.ok else "red"
        console.print(f"[{colour}]{r.pair}[/{colour}] {r.message}", soft_wrap=True)
    if failed:
        raise typer.Exit(1)


@models_app.command("convert")
def models_convert(
    pair: Annotated[list[str] | None, typer.Option(help="Only these pairs, e.g. he-en")] = None,
    quantization: Annotated[
        str | None, typer.Option(help="int8 (default), int8_float16, float16, float32")
    ] = None,
    force: Annotated[bool, typer.Option(help="Convert again even if a copy exists")] = False,
) -> None:
    """Make the CTranslate2 copy of each downloaded model, beside its folder."""
    from pipeline.translate.convert import ConvertError, convert_registry_models
    from pipeline.translate.registry import load_registry

    settings = _settings()
    specs = [
        s
        for s in load_registry(settings.registry_path, settings.translate.tier).values()
        if not pair or s.pair in pair
    ]
    try:
        for r in convert_registry_models(
            settings.models_dir,
            specs,
            quantization=quantization,
            force=force,
            progress=console.print,
        ):
            out.print(f"{r.target} {r.size_bytes / 1e6:.0f} MB {r.seconds:.0f}s")
    except ConvertError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc


@models_app.command("list")
def models_list() -> None:
    """Show each pair's model, revision, engine, size on disk and whether it is present."""
    from pipeline.translate.download import list_models

    settings = _settings()
    table = Table(
        "pair",
        "tier",
        "model",
        "revision",
        "published BLEU",
        "engine",
        "quantization",
        "present",
        "size",
        "problems",
    )
    for m in list_models(settings, all_tiers=True):
        table.add_row(
            m.pair,
            m.tier + (" *" if m.active else ""),
            m.hf_id,
            m.revision[:12],
            m.bleu or "-",
            m.engine,
            m.quantization,
            "yes" if m.present else "no",
            f"{m.size_bytes / 1e6:.1f} MB",
            "; ".join(m.problems),
        )
    out.print(table)
    console.print(
        f"models folder: {settings.models_dir}; * = in use (translate.tier = "
        f"{settings.translate.tier!r})"
    )


@eval_app.command("events")
def eval_events(
    gold: Annotated[Path, typer.Option(help="CSV with url,event")] = Path(
        "samples/gold_events.csv"
    ),
    feeds: Annotated[
        Path | None, typer.Option(help="Folder of saved feeds (*.xml), one per outlet")
    ] = None,
    signal: Annotated[
        str, typer.Option(help="Signal for the summary line: lexical, semantic or hybrid")
    ] = "hybrid",
    worst: Annotated[int, typer.Option(help="Worst splits and merges to list")] = 8,
) -> None:
    """Pairwise and B-cubed precision/recall/F1 of events against a gold mapping, per language
    pair, with the worst splits and merges."""
    from pipeline.eval.events import SIGNALS, evaluate_with_diagnostics

    if signal not in SIGNALS:
        console.print(f"[red]unknown signal {signal!r}[/red]; choose one of {', '.join(SIGNALS)}")
        raise typer.Exit(2)
    settings = _settings()
    scores, diag = evaluate_with_diagnostics(gold, settings, feeds, signal, worst=worst)
    table = Table(
        "signal", "pairwise P", "pairwise R", "pairwise F1", "B³ P", "B³ R", "B³ F1", "events"
    )
    for name, score in scores.items():
        p, b = score.pairwise, score.bcubed
        table.add_row(
            name + (" (stored events)" if name == "warehouse" else ""),
            *(f"{x:.3f}" for x in (p.precision, p.recall, p.f1, b.precision, b.recall, b.f1)),
            str(score.events),
        )
    out.print(table)
    if diag is not None:
        from pipeline.eval.events_view import print_diagnostics

        print_diagnostics(diag, out)
    chosen = scores[signal]
    if chosen.missing:
        console.print(
            f"[yellow]{chosen.missing} gold article(s) not found in the warehouse[/yellow]"
        )
    out.print(chosen.summary_line(), highlight=False, soft_wrap=True)


@airflow_app.command("init")
def airflow_init(
    translate_slots: Annotated[
        int | None, typer.Option(help="Slots of the parallax_translate pool")
    ] = None,
) -> None:
    """Create the Airflow pools the DAGs use (run after `airflow db migrate`)."""
    from pipeline.airflow_setup import ensure_pools

    for pool in ensure_pools(translate_slots):
        out.print(f"pool {pool.name}: {pool.slots} slot(s)")


@eval_app.command("translation")
def eval_translation(
    pairs: Annotated[Path, typer.Option("--pairs", help="TSV: src_lang, source, reference")],
) -> None:
    """BLEU and chrF (sacrebleu) per language pair and engine."""
    from pipeline.eval.translation import PairsFileError, evaluate_translation

    try:
        scores = evaluate_translation(pairs, _settings())
    except PairsFileError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    table = Table("pair", "engine", "sentences", "translated", "BLEU", "chrF", "flagged", "s")

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    for sc in scores:
        table.add_row(
            sc.pair,
            sc.engine,
            str(sc.sentences),
            str(sc.translated),
            fmt(sc.bleu),
            fmt(sc.chrf),
            str(sc.flagged),
            fmt(sc.seconds),
        )
    out.print(table)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())


# Command groups in pipeline/commands/ (report, search, watch, outlets, ...) register last.
from pipeline.commands import register_all  # noqa: E402

register_all(app)
