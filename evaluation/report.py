"""The evaluation report: :class:`EvalReport`, its files, and its MLflow logging.

:func:`write_report_files` writes into ``report.out_dir``:

- ``metrics.json``: flat metrics (``speech_bleu.en-zh.quality`` ...; toplines as
  ``speech_bleu.en-zh.topline_reference``; slices as ``speech_bleu.en-zh.quality/seen``), SacreBLEU
  signatures, the batched-vs-unbatched ASR agreement, counts per mode, topline and slice, timings,
  ``skipped`` (requested directions without rows in the split -> reason);
- ``metrics_table.csv`` / ``metrics_table.md``: the Table 1 style table (rows = direction x mode,
  then the toplines, per slice; the markdown ends with the skipped directions);
- ``utterances.parquet`` / ``utterances.csv``: one row per utterance (ids, texts, ASR of the output,
  durations, per-utterance BLEU/WER, speaker similarity);
- ``samples.html`` + ``audio/``: players for source, output and reference target speech;
- ``metrics.png``: one panel per metric, bars per mode with the toplines beside them
  (:mod:`evaluation.plots`).

:func:`log_report` logs all of it to MLflow (metrics with the flat names, SacreBLEU signatures as
tags, skipped directions as the tag ``uniss.eval.skipped``, the files as artifacts).
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.common import ALL_SLICE, DIRECTIONS, EVAL_EXPERIMENT, MODES, SAMPLE_RATE_HZ, TOPLINES, eval_mlflow
from evaluation.plots import TITLES, plot_metrics
from uniss.metrics import TABLE1_METRICS, CorpusScores

__all__ = ["TITLES", "EvalReport", "log_report", "markdown_table", "markdown_table_html", "plot_metrics",
           "write_report_files"]  # TITLES and plot_metrics live in evaluation.plots


#: Waveforms of one utterance for the sample page: (source, output, reference or None), each
#: ``(N,)`` float32 at 16 kHz, keyed by (utterance id, direction, mode).
AudioMap = dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray, np.ndarray | None]]


@dataclass
class EvalReport:
    """Result of :func:`evaluation.evaluate.evaluate`.

    Attributes:
        metrics: flat metric name -> value (``speech_bleu.en-zh.quality``; NaN when not computable;
            toplines and slices by ``evaluation.common.slice_key``).
        groups: corpus scores per (direction, mode or topline, slice).
        utterances: per-utterance table (``pandas.DataFrame``; no audio).
        signatures: SacreBLEU signature per target language (``zh``/``en``).
        asr_agreement: per target language: ``{"n", "exact", "error_rate"}`` of batched vs unbatched ASR.
        out_dir: where the report files were written.
        timings: seconds spent translating, scoring the modes, on toplines, and in the MOS predictor.
        files: report file paths.
        skipped: requested direction -> why it was not evaluated (``no test rows for direction
            zh-en``); such a direction has no metrics and no groups.
    """

    metrics: dict[str, float]
    groups: list[CorpusScores]
    utterances: Any
    signatures: dict[str, str]
    asr_agreement: dict[str, dict[str, float]]
    out_dir: Path
    timings: dict[str, float] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def slices(self) -> list[str]:
        """Slices scored, ``all`` first (then ``seen``/``heldout``/``real`` when the data names them)."""
        return list(dict.fromkeys(g.slice for g in self.groups))

    @property
    def toplines(self) -> list[str]:
        """Toplines scored (:data:`evaluation.common.TOPLINES` order)."""
        return [t for t in TOPLINES if any(g.mode == t for g in self.groups)]

    def table(self, slice: str | None = None) -> Any:
        """Table 1 style ``DataFrame``: rows (direction, mode or topline, slice), columns ``direction``,
        ``mode``, ``slice``, ``n``, then :data:`uniss.metrics.TABLE1_METRICS`; model modes first, then
        toplines. ``slice`` keeps one slice (default: all slices)."""
        import pandas as pd

        order = [*MODES, *TOPLINES]
        gs = sorted((g for g in self.groups if slice is None or g.slice == slice),
                    key=lambda g: (self.slices.index(g.slice), order.index(g.mode), g.direction))
        rows = [{"direction": g.direction, "mode": g.mode, "slice": g.slice, "n": g.n,
                 **{m: g.metrics()[m] for m in TABLE1_METRICS}} for g in gs]
        return pd.DataFrame(rows, columns=["direction", "mode", "slice", "n", *TABLE1_METRICS])


# ---------------------------------------------------------------------------------------------
# report files
# ---------------------------------------------------------------------------------------------


def _fmt(v: float, metric: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.2f}" if metric in ("speech_bleu", "text_bleu") else f"{v:.3f}"


def markdown_table(report: EvalReport) -> str:
    """Table 1 style markdown: one row per mode, then one per topline, each cell ``EN-ZH | ZH-EN``
    like the paper; one table per slice (``all`` first, headed ``### slice: <name>`` when the data
    has slices); then one ``- skipped <direction>: <reason>`` line per skipped direction."""
    dirs = sorted({g.direction for g in report.groups}, key=DIRECTIONS.index)
    rows = [m for m in (*MODES, *TOPLINES) if any(g.mode == m for g in report.groups)]
    by = {(g.direction, g.mode, g.slice): g.metrics() for g in report.groups}
    head = "| mode | " + " | ".join(TITLES[m] + " (" + " \\| ".join(d.upper() for d in dirs) + ")" for m in TABLE1_METRICS) + " |"
    out = []
    for sl in report.slices:
        if len(report.slices) > 1:
            out.append(f"### slice: {sl}\n")
        lines = [head, "|" + "---|" * (len(TABLE1_METRICS) + 1)]
        for mode in rows:
            if not any((d, mode, sl) in by for d in dirs):
                continue
            cells = [" \\| ".join(_fmt(by.get((d, mode, sl), {}).get(m, float("nan")), m) for d in dirs) for m in TABLE1_METRICS]
            lines.append(f"| {mode} | " + " | ".join(cells) + " |")
        out.append("\n".join(lines) + "\n")
    if report.skipped:
        out.append("\n".join(f"- skipped {d}: {why}" for d, why in report.skipped.items()) + "\n")
    return "\n".join(out)


def write_report_files(report: EvalReport, audio: AudioMap, samples_per_group: int, meta: dict) -> None:
    """Write every report file (module docstring) into ``report.out_dir`` and record their paths in
    ``report.files``.

    Args:
        report: the scored evaluation.
        audio: waveforms per (id, direction, mode) for the sample page (:data:`AudioMap`).
        samples_per_group: utterances per (direction, mode) on ``samples.html``.
        meta: extra top-level keys of ``metrics.json`` (``split``, ``model``).
    """
    import soundfile as sf

    out = report.out_dir
    files = report.files
    files["metrics.json"] = out / "metrics.json"
    files["metrics.json"].write_text(json.dumps({
        "metrics": {k: (None if math.isnan(v) else v) for k, v in report.metrics.items()},
        "signatures": report.signatures,
        "asr_agreement": report.asr_agreement,
        "counts": {f"{g.direction}.{g.mode}": g.n for g in report.groups if g.mode in MODES and g.slice == ALL_SLICE},
        "toplines": {t: {g.direction: {**g.metrics(), "n": g.n} for g in report.groups
                         if g.mode == t and g.slice == ALL_SLICE} for t in report.toplines},
        "slices": {sl: {f"{g.direction}.{g.mode}": g.n for g in report.groups if g.slice == sl}
                   for sl in report.slices},
        "timings_s": report.timings,
        "skipped": report.skipped,
        **meta,
    }, indent=2, ensure_ascii=False))
    table = report.table()
    files["metrics_table.csv"] = out / "metrics_table.csv"
    table.to_csv(files["metrics_table.csv"], index=False)
    files["metrics_table.md"] = out / "metrics_table.md"
    files["metrics_table.md"].write_text(markdown_table(report))
    files["utterances.parquet"] = out / "utterances.parquet"
    report.utterances.to_parquet(files["utterances.parquet"], index=False)
    files["utterances.csv"] = out / "utterances.csv"
    report.utterances.to_csv(files["utterances.csv"], index=False)

    # HTML sample page with players; audio files beside it (relative links work in the MLflow UI)
    adir = out / "audio"
    adir.mkdir(exist_ok=True)
    parts = ["<!doctype html><meta charset='utf-8'><title>UniSS evaluation samples</title>",
             "<style>body{font-family:sans-serif}td{vertical-align:top;padding:4px;border-bottom:1px solid #ddd}</style>",
             "<h1>UniSS evaluation samples</h1>", markdown_table_html(report)]
    parts += [f"<p><b>skipped {html.escape(d)}</b>: {html.escape(why)}</p>" for d, why in report.skipped.items()]
    seen: dict[tuple[str, str], int] = {}
    parts.append("<table><tr><th>id</th><th>direction / mode</th><th>source</th><th>output</th><th>reference</th></tr>")
    for r in report.utterances.itertuples():
        key = (r.direction, r.mode)
        if seen.get(key, 0) >= samples_per_group:
            continue
        seen[key] = seen.get(key, 0) + 1
        src, outw, ref = audio[(r.id, r.direction, r.mode)]
        stem = f"{r.id}.{r.direction}.{r.mode}".replace("/", "_")
        out_label = f"{html.escape(str(r.output_text))}<br><i>ASR:</i> {html.escape(str(r.output_asr))}"
        cells = []
        for tag, wav, label in (("src", src, html.escape(str(r.src_text))), ("out", outw, out_label),
                                ("ref", ref, html.escape(str(r.ref_text)))):
            if wav is None or wav.size == 0:
                cells.append(f"<td>(no audio)<br>{label}</td>")
                continue
            f = adir / f"{stem}.{tag}.wav"
            sf.write(f, wav, SAMPLE_RATE_HZ)
            cells.append(f"<td><audio controls preload='none' src='audio/{f.name}'></audio><br>{label}</td>")
        parts.append(f"<tr><td>{html.escape(r.id)}</td><td>{r.direction} / {r.mode}</td>{''.join(cells)}</tr>")
    parts.append("</table>")
    files["samples.html"] = out / "samples.html"
    files["samples.html"].write_text("\n".join(parts))

    files["metrics.png"] = out / "metrics.png"
    plot_metrics(report, files["metrics.png"])


def markdown_table_html(report: EvalReport) -> str:
    """The Table 1 style table (every mode, topline and slice) as an HTML table (for the sample
    page; ``DataFrame.to_html``, which escapes cell text; float cells formatted like the markdown
    table)."""
    t = report.table()
    fmt = {c: (lambda v, c=c: _fmt(v, c) if isinstance(v, float) else str(v)) for c in t.columns}
    return t.to_html(index=False, formatters=fmt, na_rep="-", border=0)


# ---------------------------------------------------------------------------------------------
# MLflow
# ---------------------------------------------------------------------------------------------


def log_report(report: EvalReport, *, run_name: str | None = None, tags: dict[str, str] | None = None) -> str:
    """Log an :class:`EvalReport` to MLflow: metrics (flat names incl. toplines and slices, NaN
    skipped), SacreBLEU signatures as tags, ASR agreement metrics, timings (``eval_time_s.*``), the
    toplines and slices scored as tags, the skipped directions as tag ``uniss.eval.skipped``
    (``zh-en: no test rows for direction zh-en``; set only when a direction was skipped), and every
    report file under artifact path ``eval/``.

    Logs into the active run if there is one, else into a new run of experiment ``uniss-eval``.
    Returns the run id.
    """
    mlflow = eval_mlflow()
    active = mlflow.active_run()
    if active is None:
        mlflow.set_experiment(EVAL_EXPERIMENT)
    ctx = mlflow.start_run(run_name=run_name or "evaluate", tags=tags) if active is None else None
    run = ctx.__enter__() if ctx else active
    try:
        mlflow.log_metrics({k: v for k, v in report.metrics.items() if not math.isnan(v)})
        for lang, a in report.asr_agreement.items():
            mlflow.log_metrics({f"asr_batch_agreement.{lang}": a["exact"], f"asr_batch_error_rate.{lang}": a["error_rate"]})
        sig_tags = {f"sacrebleu_signature.{lang}": s for lang, s in report.signatures.items()}
        if report.signatures:
            sig_tags["sacrebleu_signature"] = " ; ".join(f"{k}: {v}" for k, v in sorted(report.signatures.items()))
        if report.timings:
            mlflow.log_metrics({f"eval_time_s.{k.removesuffix('_s')}": v for k, v in report.timings.items()})
        skip_tags = {"uniss.eval.skipped": "; ".join(f"{d}: {why}" for d, why in report.skipped.items())
                     } if report.skipped else {}
        mlflow.set_tags({**sig_tags, **(tags or {}), "uniss.eval": "true", **skip_tags,
                         "uniss.eval.toplines": ",".join(report.toplines), "uniss.eval.slices": ",".join(report.slices)})
        mlflow.log_artifacts(str(report.out_dir), artifact_path="eval")
        return run.info.run_id
    finally:
        if ctx:
            ctx.__exit__(None, None, None)
