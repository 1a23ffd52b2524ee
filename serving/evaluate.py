"""Evaluate a UniSS model on a UniST split: paper Table 1 columns per direction and mode, reports,
MLflow logging, and the Table 4 style comparison of runs (ablations).

:func:`evaluate` runs the model through ``serving.engine.TranslationEngine`` (batched), transcribes
the output speech with ASR (``uniss.engines.asr.WhisperASR`` by default), and computes per
(direction, mode): Speech-BLEU, Text-BLEU, SLC-0.2, SLC-0.4, speaker similarity, RTF
(``uniss.metrics``; paper §5.2.2, App. C.1). A.PCP and UTMOS are not computed (no offline predictor
works with this torch build; see ``uniss.metrics``). It writes into ``out_dir``:

- ``metrics.json``: flat metrics (``speech_bleu.en-zh.quality`` ...), SacreBLEU signatures, the
  batched-vs-unbatched ASR agreement, counts;
- ``metrics_table.csv`` / ``metrics_table.md``: the Table 1 style table (rows = direction x mode);
- ``utterances.parquet`` / ``utterances.csv``: one row per utterance (ids, texts, ASR of the output,
  durations, per-utterance BLEU/WER, speaker similarity);
- ``samples.html`` + ``audio/``: players for source, output and reference target speech;
- ``metrics.png``: metric comparison plot.

:func:`log_report` logs all of it to MLflow (metrics with the flat names, SacreBLEU signatures as
tags, the files as artifacts). :func:`compare_runs` reads MLflow runs and builds the paper Table 4
table (rows = runs or ``run:mode``, columns = a metric per direction, deltas vs the first row).
"""

from __future__ import annotations

import html
import io
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from uniss.errors import UnissError
from uniss.metrics import (
    TABLE1_METRICS,
    CorpusScores,
    UtteranceResult,
    asr_batch_agreement,
    metric_key,
    score_group,
    speaker_similarities,
)

#: Inference modes (paper §3.2) and directions evaluated by default (paper Table 1: EN-ZH | ZH-EN).
MODES = ("quality", "performance", "direct")
DIRECTIONS = ("en-zh", "zh-en")
#: Audio rate of the shards and of every waveform here (Hz; docs/design.md "UniST data").
SAMPLE_RATE_HZ = 16_000
#: Experiment of evaluation and comparison runs.
EVAL_EXPERIMENT = "uniss-eval"
#: Column titles of the Table 1 style table.
TITLES = {
    "speech_bleu": "Speech-BLEU",
    "text_bleu": "Text-BLEU",
    "slc_0.2": "SLC 0.2",
    "slc_0.4": "SLC 0.4",
    "speaker_sim": "Spk-Sim",
    "rtf": "RTF",
}


class EvaluationError(UnissError, ValueError):
    """Bad evaluation request: unknown direction/mode, no test rows, bad audio in the split."""


@dataclass
class EvalReport:
    """Result of :func:`evaluate`.

    Attributes:
        metrics: flat metric name -> value (``speech_bleu.en-zh.quality``; NaN when not computable).
        groups: corpus scores per (direction, mode).
        utterances: per-utterance table (``pandas.DataFrame``; no audio).
        signatures: SacreBLEU signature per target language (``zh``/``en``).
        asr_agreement: per target language: ``{"n", "exact", "error_rate"}`` of batched vs unbatched ASR.
        out_dir: where the report files were written.
        files: report file paths.
    """

    metrics: dict[str, float]
    groups: list[CorpusScores]
    utterances: Any
    signatures: dict[str, str]
    asr_agreement: dict[str, dict[str, float]]
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)

    def table(self) -> Any:
        """Table 1 style ``DataFrame``: rows (direction, mode), columns :data:`uniss.metrics.TABLE1_METRICS`."""
        import pandas as pd

        rows = [{"direction": g.direction, "mode": g.mode, "n": g.n, **{m: g.metrics()[m] for m in TABLE1_METRICS}}
                for g in self.groups]
        return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------


def _check_request(directions: Sequence[str], modes: Sequence[str]) -> None:
    for d in directions:
        if d not in DIRECTIONS:
            raise EvaluationError(f"unknown direction {d!r}; expected one of {DIRECTIONS}")
    for m in modes:
        if m not in MODES:
            raise EvaluationError(f"unknown mode {m!r}; expected one of {MODES}")
    if not directions or not modes:
        raise EvaluationError("at least one direction and one mode are needed")


def decode_flac(data: bytes, what: str) -> np.ndarray:
    """FLAC/WAV bytes of a shard column -> ``(N,)`` float32 mono 16 kHz (``uniss.audio.load_audio``:
    soundfile decode, soxr resampling).

    Raises:
        EvaluationError: empty or unreadable audio (named by ``what``, e.g. ``"<id> src_audio"``).
    """
    from uniss.audio import AudioError, load_audio

    if data is None or len(data) == 0:
        raise EvaluationError(f"{what}: empty audio (a token-only dataset cannot be evaluated in speech)")
    try:
        return load_audio(bytes(data), min_duration_s=0.0)
    except AudioError as e:
        raise EvaluationError(f"{what}: unreadable audio ({e})") from None


def _load_rows(data: Any, split: str) -> Any:
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data[data["split"] == split] if "split" in data.columns else data
    from uniss.unist.dataset import load_samples

    return load_samples(data, split=split, subset="general")


def _load_engine(model: Any) -> Any:
    if not isinstance(model, (str, Path)) and hasattr(model, "translate"):  # an engine (str has .translate too)
        return model
    from serving.engine import TranslationEngine

    return TranslationEngine.load(model)


def _default_asr() -> Any:
    from uniss.engines.asr import WhisperASR

    return WhisperASR()


def _default_embed() -> Callable[[np.ndarray], np.ndarray]:
    from uniss.engines.speaker import SpeakerEncoder

    return SpeakerEncoder().embed


# ---------------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------------


def evaluate(
    model: Any,
    data_dir: Any,
    *,
    split: str = "test",
    directions: Sequence[str] = DIRECTIONS,
    modes: Sequence[str] = MODES,
    limit: int | None = None,
    out_dir: str | Path | None = None,
    batch_size: int = 4,
    asr: Any | None = None,
    speaker_embed: Callable[[np.ndarray], np.ndarray] | None = None,
    seed: int = 0,
    do_sample: bool = True,
    asr_check_n: int = 4,
    samples_per_group: int = 3,
    log_mlflow: bool | None = None,
    run_name: str | None = None,
    run_tags: dict[str, str] | None = None,
) -> EvalReport:
    """Evaluate a model on one split in the given directions and modes.

    Args:
        model: bundle path, ``models:/NAME@ALIAS``, or an object with ``translate`` (a loaded engine).
        data_dir: UniST dataset directory (``uniss.unist.dataset.load_samples``) or a DataFrame with
            the shard columns.
        split: ``test`` (default), ``dev``, ``train``.
        directions: ``en-zh`` and/or ``zh-en``.
        modes: ``quality``, ``performance``, ``direct``.
        limit: at most this many utterances per direction (first ``limit`` ids).
        out_dir: report directory (default: a new directory under ``<UNISS_HOME>/eval``).
        batch_size: utterances per ``translate`` call.
        asr: engine with ``transcribe(wavs, language)`` (default ``WhisperASR()``).
        speaker_embed: waveform -> speaker embedding (default resemblyzer ``SpeakerEncoder().embed``).
        seed: sampling seed (paper §5.2.4 sampling; fixed for reproducibility).
        do_sample: ``False`` for greedy decoding.
        asr_check_n: outputs per target language re-transcribed one by one to check batched ASR.
        samples_per_group: utterances per (direction, mode) on the HTML sample page.
        log_mlflow: log to MLflow (default: when ``MLFLOW_TRACKING_URI`` is set).
        run_name / run_tags: MLflow run name and extra tags (e.g. ``uniss.variant``).
    Returns:
        :class:`EvalReport`.
    Raises:
        EvaluationError: unknown direction/mode, no rows for a direction, unreadable audio.
        DataNotValidatedError / DataIntegrityError: from the dataset reader.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    _check_request(directions, modes)
    if log_mlflow is None:
        log_mlflow = bool(os.environ.get("MLFLOW_TRACKING_URI"))
    if log_mlflow:  # fail before minutes of inference, not after
        from serving.registry import check_server

        check_server()
    rows = _load_rows(data_dir, split)
    engine = _load_engine(model)
    asr = asr or _default_asr()
    embed = speaker_embed or _default_embed()
    if out_dir is None:
        from uniss.settings import get_settings

        out_dir = get_settings().home_dir / "eval" / time.strftime("%Y%m%d-%H%M%S")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    results: list[UtteranceResult] = []
    audio: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}
    agreement: dict[str, dict[str, float]] = {}
    groups: list[CorpusScores] = []
    for direction in directions:
        src_lang, tgt_lang = direction.split("-")
        sub = rows[(rows["src_lang"] == src_lang) & (rows["tgt_lang"] == tgt_lang)].sort_values("id")
        if limit is not None:
            sub = sub.head(int(limit))
        if len(sub) == 0:
            raise EvaluationError(f"no {split} rows for direction {direction}")
        src_wavs = [decode_flac(b, f"{i} src_audio") for i, b in zip(sub["id"], sub["src_audio"], strict=True)]
        ref_wavs = [decode_flac(b, f"{i} tgt_audio") if isinstance(b, bytes | bytearray) and len(b) else None
                    for i, b in zip(sub["id"], sub.get("tgt_audio", [None] * len(sub)), strict=True)]
        for mode in modes:
            outs: list[Any] = []
            proc: list[float] = []
            bar = tqdm(total=len(sub), desc=f"translate {direction} {mode}", unit="utt", leave=False)
            for start in range(0, len(sub), batch_size):
                batch = src_wavs[start:start + batch_size]
                t0 = time.perf_counter()
                res = engine.translate(batch, target_language=tgt_lang, mode=mode, seed=seed + start, do_sample=do_sample)
                dt = time.perf_counter() - t0
                outs.extend(res)
                proc.extend([dt / len(batch)] * len(batch))
                bar.update(len(batch))
            bar.close()
            out_wavs = [np.asarray(r.wav, dtype=np.float32) for r in outs]
            asr_texts = _transcribe(asr, out_wavs, tgt_lang, batch_size)
            if tgt_lang not in agreement:
                check = [w for w in out_wavs if w.size >= SAMPLE_RATE_HZ // 10][:asr_check_n]
                if len(check) >= 2:
                    a = asr_batch_agreement(asr, check, tgt_lang)
                    agreement[tgt_lang] = {"n": a.n, "exact": a.exact, "error_rate": a.error_rate}
            sims = speaker_similarities(src_wavs, out_wavs, embed)
            group: list[UtteranceResult] = []
            for k, (rid, r) in enumerate(zip(sub["id"], outs, strict=True)):
                row = sub.iloc[k]
                u = UtteranceResult(
                    id=str(rid), direction=direction, mode=mode, src_lang=src_lang, tgt_lang=tgt_lang,
                    src_text=str(row.get("src_text", "")), ref_text=str(row.get("tgt_text", "")),
                    output_text=r.target_text or "", output_asr=asr_texts[k], source_text_pred=r.source_text or "",
                    source_duration_s=float(len(src_wavs[k]) / SAMPLE_RATE_HZ),
                    output_duration_s=float(out_wavs[k].size / SAMPLE_RATE_HZ),
                    ref_duration_s=float(ref_wavs[k].size / SAMPLE_RATE_HZ) if ref_wavs[k] is not None else float("nan"),
                    processing_s=proc[k], speaker_sim=sims[k], complete=bool(r.complete), reason=r.reason or "",
                )
                group.append(u)
                audio[(u.id, direction, mode)] = (src_wavs[k], out_wavs[k], ref_wavs[k])
            groups.append(score_group(group))
            results.extend(group)

    flat: dict[str, float] = {}
    signatures: dict[str, str] = {}
    for g in groups:
        for m, v in g.metrics().items():
            flat[metric_key(m, g.direction, g.mode)] = float(v)
        tgt = g.direction.split("-")[1]
        signatures.setdefault(tgt, g.speech_signature)
    utts = pd.DataFrame([r.to_row() for r in results])
    report = EvalReport(metrics=flat, groups=groups, utterances=utts, signatures=signatures,
                        asr_agreement=agreement, out_dir=out)
    _write_files(report, audio, samples_per_group, meta={"split": split, "model": str(model) if not hasattr(model, "translate") else "engine"})
    if log_mlflow:
        log_report(report, run_name=run_name, tags=run_tags)
    return report


def _transcribe(asr: Any, wavs: list[np.ndarray], language: str, batch_size: int) -> list[str]:
    """ASR of output speech in batches; empty or sub-0.1 s outputs transcribe as ``""`` (kept, not dropped)."""
    texts = [""] * len(wavs)
    idx = [i for i, w in enumerate(wavs) if w.size >= SAMPLE_RATE_HZ // 10]
    for s in range(0, len(idx), batch_size):
        part = idx[s:s + batch_size]
        for i, t in zip(part, asr.transcribe([wavs[i] for i in part], language), strict=True):
            texts[i] = t
    return texts


# ---------------------------------------------------------------------------------------------
# report files
# ---------------------------------------------------------------------------------------------


def _fmt(v: float, metric: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.2f}" if metric in ("speech_bleu", "text_bleu") else f"{v:.3f}"


def markdown_table(report: EvalReport) -> str:
    """Table 1 style markdown: one row per mode, each cell ``EN-ZH | ZH-EN`` like the paper."""
    dirs = sorted({g.direction for g in report.groups}, key=DIRECTIONS.index)
    modes = [m for m in MODES if any(g.mode == m for g in report.groups)]
    by = {(g.direction, g.mode): g.metrics() for g in report.groups}
    head = "| mode | " + " | ".join(TITLES[m] + " (" + " \\| ".join(d.upper() for d in dirs) + ")" for m in TABLE1_METRICS) + " |"
    lines = [head, "|" + "---|" * (len(TABLE1_METRICS) + 1)]
    for mode in modes:
        cells = [" \\| ".join(_fmt(by.get((d, mode), {}).get(m, float("nan")), m) for d in dirs) for m in TABLE1_METRICS]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _write_files(report: EvalReport, audio: dict, samples_per_group: int, meta: dict) -> None:
    import soundfile as sf

    out = report.out_dir
    files = report.files
    files["metrics.json"] = out / "metrics.json"
    files["metrics.json"].write_text(json.dumps({
        "metrics": {k: (None if math.isnan(v) else v) for k, v in report.metrics.items()},
        "signatures": report.signatures,
        "asr_agreement": report.asr_agreement,
        "counts": {f"{g.direction}.{g.mode}": g.n for g in report.groups},
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
    """The Table 1 style table as an HTML table (for the sample page)."""
    t = report.table()
    head = "".join(f"<th>{html.escape(c)}</th>" for c in t.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v, c) if isinstance(v, float) else str(v))}</td>"
                                    for c, v in row.items()) + "</tr>" for _, row in t.iterrows())
    return f"<table><tr>{head}</tr>{body}</table>"


def plot_metrics(report: EvalReport, path: Path) -> None:
    """Bar chart per metric (x = direction/mode) to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in TABLE1_METRICS if m != "rtf"]
    labels = [f"{g.direction}\n{g.mode}" for g in report.groups]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.4))
    for ax, m in zip(axes, metrics, strict=True):
        vals = [g.metrics()[m] for g in report.groups]
        ax.bar(range(len(vals)), [0 if math.isnan(v) else v for v in vals], color="tab:blue")
        ax.set_xticks(range(len(vals)), labels, fontsize=7)
        ax.set_title(TITLES[m])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# MLflow
# ---------------------------------------------------------------------------------------------


def _mlflow():
    import mlflow

    from serving.registry import tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    return mlflow


def log_report(report: EvalReport, *, run_name: str | None = None, tags: dict[str, str] | None = None) -> str:
    """Log an :class:`EvalReport` to MLflow: metrics (flat names, NaN skipped), SacreBLEU signatures
    as tags, ASR agreement metrics, and every report file under artifact path ``eval/``.

    Logs into the active run if there is one, else into a new run of experiment ``uniss-eval``.
    Returns the run id.
    """
    mlflow = _mlflow()
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
        mlflow.set_tags({**sig_tags, **(tags or {}), "uniss.eval": "true"})
        mlflow.log_artifacts(str(report.out_dir), artifact_path="eval")
        return run.info.run_id
    finally:
        if ctx:
            ctx.__exit__(None, None, None)


def evaluate_step(bundle_dir: str, data_dir: str, split: str, directions: Sequence[str], modes: Sequence[str],
                  limit: int | None, report_dir: str) -> dict[str, float]:
    """Pipeline component entry (``components/evaluation.py`` ``evaluate_model``): evaluate a bundle,
    write the report into ``report_dir`` (its ``samples.html`` is the component's HTML artifact),
    log to the active MLflow run when tracking is configured; returns the flat metrics (NaN dropped)."""
    rep = evaluate(bundle_dir, data_dir, split=split, directions=tuple(directions), modes=tuple(modes),
                   limit=limit if limit and limit > 0 else None, out_dir=report_dir)
    return {k: v for k, v in rep.metrics.items() if not math.isnan(v)}


# ---------------------------------------------------------------------------------------------
# comparison (paper Table 4)
# ---------------------------------------------------------------------------------------------


def compare_runs(
    run_specs: Sequence[str],
    *,
    metric: str = "speech_bleu",
    directions: Sequence[str] = DIRECTIONS,
    default_mode: str = "performance",
) -> Any:
    """Table 4 style comparison of evaluation runs.

    Args:
        run_specs: ``RUN_ID`` or ``RUN_ID:MODE`` (e.g. ``abc123:direct`` for the Direct S2ST row of the
            base model); the first is the base of the deltas.
        metric: metric compared (default Speech-BLEU, as paper Table 4).
        directions: directions shown (columns).
        default_mode: mode when a spec has none (paper: Base/Train rows in Performance mode).
    Returns:
        ``DataFrame``: ``variant``, ``run_id``, ``mode``, then ``<metric>.<dir>`` and ``delta.<dir>``.
    Raises:
        EvaluationError: no runs, unknown run id, or a run lacking the metric.
    """
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from serving.registry import client

    if not run_specs:
        raise EvaluationError("compare needs at least one run id")
    c = client()
    rows = []
    for spec in run_specs:
        run_id, _, mode = spec.partition(":")
        mode = mode or default_mode
        if mode not in MODES:
            raise EvaluationError(f"{spec}: unknown mode {mode!r}")
        try:
            run = c.get_run(run_id)
        except MlflowException as e:
            raise EvaluationError(f"unknown run {run_id}: {e.message}") from None
        variant = run.data.tags.get("uniss.variant") or run.data.tags.get("mlflow.runName") or run_id[:8]
        if mode == "direct" and ":" in spec:
            variant = f"{variant} (Direct S2ST)"
        row = {"variant": variant, "run_id": run_id, "mode": mode}
        for d in directions:
            key = metric_key(metric, d, mode)
            if key not in run.data.metrics:
                raise EvaluationError(f"run {run_id} has no metric {key}")
            row[f"{metric}.{d}"] = float(run.data.metrics[key])
        rows.append(row)
    df = pd.DataFrame(rows)
    for d in directions:
        df[f"delta.{d}"] = df[f"{metric}.{d}"] - df[f"{metric}.{d}"].iloc[0]
    return df


def log_comparison(df: Any, *, metric: str = "speech_bleu") -> str:
    """Log a :func:`compare_runs` table as a new run of ``uniss-eval`` (CSV + markdown artifacts,
    tag ``uniss.compare`` with the run ids); returns its run id."""
    mlflow = _mlflow()
    mlflow.set_experiment(EVAL_EXPERIMENT)
    with mlflow.start_run(run_name="compare", tags={"uniss.compare": ",".join(df["run_id"]), "uniss.compare.metric": metric}) as run:
        mlflow.log_text(df.to_csv(index=False), "comparison/table4.csv")
        mlflow.log_text(comparison_markdown(df), "comparison/table4.md")
        for _, r in df.iloc[1:].iterrows():
            for col in df.columns:
                if col.startswith("delta."):
                    mlflow.log_metric(_metric_name(f"{col}.{r['variant']}"), float(r[col]))
        return run.info.run_id


def _metric_name(name: str) -> str:
    """An MLflow-legal metric name (alphanumerics, ``_ - . : /`` and spaces; MLflow REST rule)."""
    import re

    return re.sub(r"[^A-Za-z0-9_\-.:/ ]", "_", name)[:250]


def comparison_markdown(df: Any) -> str:
    """The comparison table in markdown (deltas signed, first row ``-`` like paper Table 4)."""
    cols = [c for c in df.columns if c not in ("run_id",)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for i, (_, r) in enumerate(df.iterrows()):
        cells = []
        for c in cols:
            v = r[c]
            if c.startswith("delta."):
                cells.append("-" if i == 0 else f"{v:+.2f}")
            elif isinstance(v, float):
                cells.append(f"{v:.2f}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
