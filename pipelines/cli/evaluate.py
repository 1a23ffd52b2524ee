"""``uniss evaluate``, ``uniss compare``, ``uniss promote``, ``uniss rollback``.

Thin glue over ``evaluation`` (paper Table 1 / Table 4) and ``registry.models`` (MLflow
registry with the evaluation gate of ``uniss.gate``). MLflow is reached at ``MLFLOW_TRACKING_URI``
or ``UNISS_MLFLOW_TRACKING_URI`` (``uniss stack env`` prints them).
"""

from __future__ import annotations

import math
from pathlib import Path

import typer

from pipelines.cli._common import console, err_console, friendly_errors
from uniss.settings import MODEL_NAME


def _csv(value: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in value.split(",") if x.strip())


def evaluate(
    model: str = typer.Option(..., "--model", help=f"bundle directory, models:/{MODEL_NAME}@ALIAS, or cascade:[mt=..,tts=..,voice=..] "
                                             "(ASR -> MT -> TTS baseline)"),
    data: Path = typer.Option(..., "--data", help="UniST dataset directory"),
    split: str = typer.Option("test", help="train | dev | test"),
    directions: str = typer.Option("en-zh,zh-en", help="comma-separated: en-zh,zh-en"),
    modes: str = typer.Option("quality,performance,direct", help="comma-separated: quality,performance,direct"),
    limit: int = typer.Option(0, help="at most N utterances per direction (0 = all)"),
    out: Path = typer.Option(None, help="report directory (default <UNISS_HOME>/eval/<time>)"),
    batch_size: int = typer.Option(4, help="utterances per translate call"),
    seed: int = typer.Option(0, help="sampling seed"),
    greedy: bool = typer.Option(False, help="greedy decoding instead of the paper's sampling"),
    variant: str = typer.Option(None, help="ablation variant label (MLflow tag uniss.variant)"),
    no_mlflow: bool = typer.Option(False, "--no-mlflow", help="do not log to MLflow"),
    no_toplines: bool = typer.Option(False, "--no-toplines", help="skip the reference and codec toplines"),
    no_mos: bool = typer.Option(False, "--no-mos", help="skip the DNSMOS MOS proxy"),
) -> None:
    """Evaluate a model: Speech-BLEU, Text-BLEU, SLC-0.2/0.4, speaker similarity, MOS (DNSMOS proxy),
    RTF (paper Table 1), with the reference and codec toplines and per-slice tables."""
    from rich.table import Table

    from evaluation.common import TOPLINES
    from evaluation.evaluate import evaluate as run
    from evaluation.report import TITLES
    from registry.models import tracking_uri

    tags = {"uniss.variant": variant} if variant else {}
    tags["uniss.model"] = model
    rep = run(model, data, split=split, directions=_csv(directions), modes=_csv(modes), limit=limit or None,
              out_dir=out, batch_size=batch_size, seed=seed, do_sample=not greedy,
              log_mlflow=not no_mlflow, run_name=variant or "evaluate", run_tags=tags,
              toplines=() if no_toplines else TOPLINES, mos=False if no_mos else None)
    for sl in rep.slices:  # slice "all" first, then seen / heldout / real when the data names them
        t = Table(title=f"{model} on {split}" + ("" if sl == "all" else f", slice {sl}"))
        t.add_column("dir", no_wrap=True)
        t.add_column("mode", no_wrap=True, min_width=11)
        t.add_column("n", justify="right")
        for c in TITLES.values():
            t.add_column(c.replace(" (DNSMOS)", ""), justify="right")
        for _, r in rep.table(slice=sl).iterrows():
            style = "dim italic" if r["mode"].startswith("topline") else None
            cells = ["-" if math.isnan(r[m]) else f"{r[m]:.2f}" if "bleu" in m else f"{r[m]:.3f}" for m in TITLES]
            t.add_row(r["direction"], r["mode"].replace("topline_", "top:"), str(r["n"]), *cells, style=style)
        console.print(t)
    for d, why in rep.skipped.items():  # a requested direction without rows in the split: no metrics
        console.print(f"skipped {d}: {why}", style="yellow", markup=False)
    if rep.toplines:
        console.print("toplines: top:reference = the data's target speech scored as an output; top:codec = the "
                      "data's codec decoding the target semantic tokens in the source voice; MOS = DNSMOS P.808")
    console.print("time (s): " + ", ".join(f"{k} {v:.1f}" for k, v in rep.timings.items()))
    for lang, sig in rep.signatures.items():
        console.print(f"SacreBLEU ({lang}): {sig}")
    for lang, a in rep.asr_agreement.items():
        console.print(f"ASR batched vs unbatched ({lang}): exact {a['exact']:.2f}, error rate {a['error_rate']:.3f} on {a['n']} clips")
    console.print(f"report: {rep.out_dir}" + ("" if no_mlflow else f"  (logged to {tracking_uri()})"))


def compare(
    runs: list[str] = typer.Argument(..., help="MLflow run ids (RUN or RUN:MODE); the first is the base"),
    metric: str = typer.Option("speech_bleu", help="metric(s) to compare, comma-separated (e.g. "
                               "speech_bleu,text_bleu,slc_0.2,speaker_sim: paper Table 1 style)"),
    directions: str = typer.Option("en-zh,zh-en", help="comma-separated directions"),
    mode: str = typer.Option("performance", help="mode of runs given without :MODE (paper Table 4: performance)"),
    no_log: bool = typer.Option(False, "--no-log", help="do not log the table to MLflow"),
    significance: bool = typer.Option(True, "--significance/--no-significance",
                                      help="paired-bootstrap p-value of each BLEU delta, from the runs' per-utterance outputs"),
    n_samples: int = typer.Option(1000, "--n-samples", min=100, help="bootstrap resamples"),
) -> None:
    """Paper Table 4 style delta table of evaluation runs (ablations); with several metrics, paper
    Table 1 style (systems such as a cascade beside UniSS). Each Speech-/Text-BLEU delta gets the
    p-value of a paired bootstrap over the utterances both runs scored (Koehn 2004, SacreBLEU): a
    delta with p >= 0.05 is within what chance gives on that many utterances. Logged to MLflow."""
    from rich.table import Table

    from evaluation.compare import compare_runs, format_cell, log_comparison

    metrics = _csv(metric)
    df = compare_runs(runs, metric=metrics, directions=_csv(directions), default_mode=mode, significance=significance,
                      n_samples=n_samples)
    t = Table(title=f"{', '.join(metrics)}: deltas vs {df['variant'].iloc[0]}")
    t.add_column("variant")
    t.add_column("mode")
    pairs = [(m, d) for m in metrics for d in _csv(directions)]
    label = {(m, d): d.upper() if len(metrics) == 1 else f"{m} {d.upper()}" for m, d in pairs}
    vcols = [f"{m}.{d}" for m, d in pairs]
    for p in pairs:
        t.add_column(label[p], justify="right")
    for p in pairs:
        t.add_column("Δ " + label[p], justify="right")
    pcols = [f"p.{m}.{d}" for m, d in pairs if f"p.{m}.{d}" in df.columns]
    for c in pcols:
        m, d = c[2:].rsplit(".", 1)
        t.add_column("p " + label[(m, d)], justify="right")

    for i, (_, r) in enumerate(df.iterrows()):
        t.add_row(str(r["variant"]), str(r["mode"]),
                  *(format_cell(c, r[c], base_row=i == 0) for c in [*vcols, *("delta." + c for c in vcols), *pcols]))
    console.print(t)
    if not no_log:
        rid = log_comparison(df, metric=metrics)
        console.print(f"logged comparison run {rid}")


def promote(
    version: str = typer.Argument(..., help=f"model version of {MODEL_NAME}"),
    force: bool = typer.Option(False, "--force", help="promote even if the gate refuses (needs --reason)"),
    reason: str = typer.Option(None, "--reason", help="why a forced promotion is acceptable (recorded)"),
    params: Path = typer.Option(None, help="params.yaml holding the gate: section (default: the repo's)"),
) -> None:
    """Move alias champion to VERSION through the evaluation gate (exit 1 when refused)."""
    from registry.models import promote as run

    d = run(version, force=force, reason=reason, params_path=params)
    for c in d.checks:
        mark = "[green]ok[/]" if c.passed else "[red]FAIL[/]"
        console.print(f"  {mark} {c.kind:10s} {c.message}")
    if d.passed:
        console.print(f"[bold green]promoted[/] version {version} to champion")
    elif force:
        console.print(f"[bold yellow]forced[/] version {version} to champion despite: " + "; ".join(d.reasons))
    else:
        err_console.print(f"[bold red]refused[/]: version {version} stays challenger: " + "; ".join(d.reasons))
        raise typer.Exit(code=1)


def rollback(reason: str = typer.Option(None, "--reason", help="why (recorded in MLflow)")) -> None:
    """Move alias champion back to the previous champion."""
    from registry.models import rollback as run

    v = run(reason=reason)
    console.print(f"champion is now version {v}")


def register(app: typer.Typer) -> None:
    """Add the four commands to the root app."""
    app.command("evaluate")(friendly_errors(evaluate))
    app.command("compare")(friendly_errors(compare))
    app.command("promote")(friendly_errors(promote))
    app.command("rollback")(friendly_errors(rollback))
