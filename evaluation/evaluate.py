"""Evaluate a UniSS model on a UniST split: paper Table 1 columns per direction and mode.

:func:`evaluate` runs the model through ``serving.engine.TranslationEngine`` (batched), transcribes
the output speech with ASR (``uniss.engines.asr.WhisperASR`` by default), and computes per
(direction, mode): Speech-BLEU, Text-BLEU, SLC-0.2, SLC-0.4, speaker similarity, MOS (DNSMOS P.808
proxy of the paper's UTMOS, ``uniss.engines.mos``), RTF (``uniss.metrics``; paper §5.2.2, App. C.1).
A.PCP is not computed. On the same utterances it scores the toplines (:mod:`evaluation.toplines`:
the reference target speech, and the data's codec decoding the target tokens in the source voice),
and every group per slice (:mod:`evaluation.scoring`: ``all``, and seen / held-out voices / real
speech when the shards have a ``voice_set`` column). The report files and the MLflow logging are
:mod:`evaluation.report`; the Table 4 comparison of runs is :mod:`evaluation.compare`.

Added cost of toplines and MOS (measured in ``EvalReport.timings``): the reference topline is one
batched ASR pass + speaker embedding per utterance, the codec topline one decode + the same;
DNSMOS scores each output in 9 s windows on one CPU thread.

A ``models:/NAME@ALIAS`` model is resolved to a local bundle directory by
``registry.models.resolve_model_source`` before the engine loads it.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evaluation.common import (
    DIRECTIONS,
    MODES,
    SAMPLE_RATE_HZ,
    TOPLINE_CODEC,
    TOPLINE_REFERENCE,
    TOPLINES,
    EvaluationError,
    SkippedDirectionWarning,
    TokenOnlyDataError,
    slice_key,
)
from evaluation.report import AudioMap, EvalReport, log_report, write_report_files
from evaluation.scoring import SourceEmbedCache, score_outputs, slice_scores
from evaluation.toplines import codec_outputs, load_data_codec, reference_outputs
from uniss.metrics import CorpusScores, UtteranceResult, asr_batch_agreement

__all__ = ["DIRECTIONS", "MODES", "SAMPLE_RATE_HZ", "EvalReport", "EvaluationError", "SkippedDirectionWarning",
           "decode_flac", "direction_rows", "evaluate", "evaluate_step"]


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------


def _check_request(directions: Sequence[str], modes: Sequence[str], toplines: Sequence[str] = ()) -> None:
    for t in toplines:
        if t not in TOPLINES:
            raise EvaluationError(f"unknown topline {t!r}; expected some of {TOPLINES}")
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
    from uniss.unist.dataset import load_samples, read_manifest

    if read_manifest(data).get("token_only"):
        raise TokenOnlyDataError(
            f"{data} is a token-only dataset (released UniST token ids: no audio, codec without checkpoints): "
            "speech evaluation needs source audio to translate and the paper codec's BiCodec decoder to turn "
            "semantic tokens into speech; evaluate on a dataset with audio (uniss data build) instead")
    return load_samples(data, split=split, subset="general")


def _load_engine(model: Any) -> Any:
    if not isinstance(model, (str, Path)) and hasattr(model, "translate"):  # an engine (str has .translate too)
        return model
    from serving.cascade import CASCADE_PREFIX, load_cascade

    if str(model).startswith(CASCADE_PREFIX):  # the cascaded ASR -> MT -> TTS baseline (paper Table 1)
        return load_cascade(str(model))
    from registry.models import resolve_model_source
    from serving.engine import TranslationEngine

    return TranslationEngine.load(resolve_model_source(model))


def _default_asr() -> Any:
    from uniss.engines.asr import WhisperASR

    return WhisperASR()


def _default_embed() -> Callable[[np.ndarray], np.ndarray]:
    from uniss.engines.speaker import SpeakerEncoder

    return SpeakerEncoder().embed


# ---------------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------------


def limit_rows(sub: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    """At most ``limit`` rows of one direction, sorted by id. With a ``voice_set`` column the rows are
    taken round-robin over its slices (seen / heldout / real, each in id order), so a limit never
    drops a whole slice; without one, the first ``limit`` ids.
    """
    sub = sub.sort_values("id", kind="stable")
    if limit is None or len(sub) <= int(limit):
        return sub
    if "voice_set" not in sub:
        return sub.head(int(limit))
    groups = [g for _, g in sub.groupby(sub["voice_set"].fillna(""), sort=True)]
    picked: list[int] = []
    for k in range(max(len(g) for g in groups)):
        for g in groups:
            if k < len(g) and len(picked) < int(limit):
                picked.append(g.index[k])
    return sub.loc[picked].sort_values("id", kind="stable")


def direction_rows(rows: pd.DataFrame, directions: Sequence[str], split: str,
                   limit: int | None) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """The rows of each requested direction, and the directions that have none.

    Args:
        rows: the split's shard rows (``src_lang``, ``tgt_lang``, ``id`` ...).
        directions: requested directions (``en-zh`` ...), in report order.
        split: the split's name (for the reason).
        limit: at most this many rows per direction (:func:`limit_rows`).

    Returns:
        (direction -> its rows, for directions with at least one row, in ``directions`` order;
        direction -> reason, e.g. ``no test rows for direction zh-en``, for the others).
    """
    found: dict[str, pd.DataFrame] = {}
    skipped: dict[str, str] = {}
    for direction in directions:
        src_lang, tgt_lang = direction.split("-")
        sub = limit_rows(rows[(rows["src_lang"] == src_lang) & (rows["tgt_lang"] == tgt_lang)], limit)
        if len(sub):
            found[direction] = sub
        else:
            skipped[direction] = f"no {split} rows for direction {direction}"
    return found, skipped


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
    toplines: Sequence[str] = TOPLINES,
    codec: Any | None = None,
    mos: Any | None = None,
) -> EvalReport:
    """Evaluate a model on one split in the given directions and modes.

    Args:
        model: bundle path, ``models:/NAME@ALIAS``, ``cascade:[key=value,...]`` (the ASR -> MT -> TTS
            baseline, ``serving.cascade.load_cascade``), or an object with ``translate`` (a loaded engine).
        data_dir: UniST dataset directory (``uniss.unist.dataset.load_samples``) or a DataFrame with
            the shard columns.
        split: ``test`` (default), ``dev``, ``train``.
        directions: ``en-zh`` and/or ``zh-en``.
        modes: ``quality``, ``performance``, ``direct``.
        limit: at most this many utterances per direction (:func:`limit_rows`: first ids, round-robin
            over the ``voice_set`` slices when the data has them).
        out_dir: report directory (default: a new directory under ``<UNISS_HOME>/eval``).
        batch_size: utterances per ``translate`` call.
        asr: engine with ``transcribe(wavs, language)`` (default ``WhisperASR()``).
        speaker_embed: waveform -> speaker embedding (default resemblyzer ``SpeakerEncoder().embed``).
        seed: sampling seed (paper §5.2.4 sampling; fixed for reproducibility).
        do_sample: ``False`` for greedy decoding.
        asr_check_n: outputs per target language re-transcribed one by one to check batched ASR.
        samples_per_group: utterances per (direction, mode) on the HTML sample page.
        log_mlflow: log to MLflow (default: ``uniss.settings.tracking_configured()``).
        run_name / run_tags: MLflow run name and extra tags (e.g. ``uniss.variant``).
        toplines: toplines scored on the same utterances (:data:`evaluation.common.TOPLINES`;
            ``()`` for none). ``topline_codec`` is skipped when there is no codec or no token columns.
        codec: codec of the codec topline (loaded or a directory; default ``<data_dir>/codec``).
        mos: MOS predictor (``uniss.engines.mos.MOSPredictor``); ``None`` = ``DNSMOS()``, ``False`` = no MOS.
    Returns:
        :class:`EvalReport`. A requested direction without rows in ``split`` is skipped with a
        :class:`SkippedDirectionWarning` and recorded in ``EvalReport.skipped`` (direction -> reason;
        written to ``metrics.json``, the tables and the MLflow tag ``uniss.eval.skipped``); it has no
        metrics, so the gate (``uniss.gate.decide``) refuses a model judged on it.
    Raises:
        EvaluationError: unknown direction/mode/topline, no rows in ``split`` for any requested
            direction (raised before the model is loaded), unreadable audio.
        DataNotValidatedError / DataIntegrityError: from the dataset reader.
        RegistryError: a ``models:/`` URI that cannot be resolved; the tracking server is down
            when logging to MLflow.
        ModelLoadError: the local model source cannot be loaded.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    _check_request(directions, modes, toplines)
    if log_mlflow is None:
        from uniss.settings import tracking_configured

        log_mlflow = tracking_configured()
    if log_mlflow:  # fail before minutes of inference, not after
        from registry.models import check_server

        check_server()
    rows = _load_rows(data_dir, split)
    subs, skipped = direction_rows(rows, directions, split, limit)
    if not subs:
        raise EvaluationError(f"no {split} rows for direction(s) {', '.join(directions)}: nothing to evaluate")
    for direction, why in skipped.items():
        warnings.warn(f"evaluation skips direction {direction}: {why}", SkippedDirectionWarning, stacklevel=2)
    engine = _load_engine(model)
    if hasattr(engine, "prepare"):  # one-time set-up (S2ST-Omni voice references) outside the timed translate calls
        engine.prepare(sorted({d.split("-")[1] for d in subs}))
    asr = asr or _default_asr()
    embed = speaker_embed or _default_embed()
    if out_dir is None:
        from uniss.settings import get_settings

        out_dir = get_settings().home_dir / "eval" / time.strftime("%Y%m%d-%H%M%S")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    mos = _mos_predictor(mos)
    tl_codec = load_data_codec(data_dir, codec) if TOPLINE_CODEC in toplines else None
    results: list[UtteranceResult] = []
    audio: AudioMap = {}
    agreement: dict[str, dict[str, float]] = {}
    groups: list[CorpusScores] = []
    timings = {"translate_s": 0.0, "score_s": 0.0, "toplines_s": 0.0, "mos_s": 0.0}
    for direction, sub in subs.items():
        src_lang, tgt_lang = direction.split("-")
        src_wavs = [decode_flac(b, f"{i} src_audio") for i, b in zip(sub["id"], sub["src_audio"], strict=True)]
        ref_wavs = [decode_flac(b, f"{i} tgt_audio") if isinstance(b, bytes | bytearray) and len(b) else None
                    for i, b in zip(sub["id"], sub.get("tgt_audio", [None] * len(sub)), strict=True)]
        src_embed = SourceEmbedCache(embed, src_wavs)
        score = partial(score_outputs, sub, direction, src_wavs=src_wavs, ref_wavs=ref_wavs, asr=asr,
                        embed=src_embed, mos=mos, batch_size=batch_size)
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
            timings["translate_s"] += sum(proc)
            t0 = time.perf_counter()
            out_wavs = [np.asarray(r.wav, dtype=np.float32) for r in outs]
            group = score(mode=mode, out_wavs=out_wavs, processing_s=proc, texts=[r.target_text for r in outs],
                          source_texts=[r.source_text for r in outs], complete=[r.complete for r in outs],
                          reasons=[r.reason for r in outs])
            if tgt_lang not in agreement:
                check = [w for w in out_wavs if w.size >= SAMPLE_RATE_HZ // 10][:asr_check_n]
                if len(check) >= 2:
                    a = asr_batch_agreement(asr, check, tgt_lang)
                    agreement[tgt_lang] = {"n": a.n, "exact": a.exact, "error_rate": a.error_rate}
            for k, u in enumerate(group):
                audio[(u.id, direction, mode)] = (src_wavs[k], out_wavs[k], ref_wavs[k])
            groups.extend(slice_scores(group))
            results.extend(group)
            timings["score_s"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        for name in toplines:
            made = reference_outputs(ref_wavs) if name == TOPLINE_REFERENCE else (
                codec_outputs(sub, tl_codec) if tl_codec is not None else None)
            if made is None:  # no codec or no token columns: the codec topline is skipped
                continue
            out_wavs, proc = made
            group = score(mode=name, out_wavs=out_wavs, processing_s=proc)
            for k, u in enumerate(group):
                audio[(u.id, direction, name)] = (src_wavs[k], out_wavs[k], ref_wavs[k])
            groups.extend(slice_scores(group))
            results.extend(group)
        timings["toplines_s"] += time.perf_counter() - t0

    timings["mos_s"] = mos.seconds if isinstance(mos, _TimedMOS) else 0.0
    flat: dict[str, float] = {}
    signatures: dict[str, str] = {}
    for g in groups:
        for m, v in g.metrics().items():
            flat[slice_key(m, g.direction, g.mode, g.slice)] = float(v)
        if g.mode in MODES:
            signatures.setdefault(g.direction.split("-")[1], g.speech_signature)
    utts = pd.DataFrame([r.to_row() for r in results])
    report = EvalReport(metrics=flat, groups=groups, utterances=utts, signatures=signatures,
                        asr_agreement=agreement, out_dir=out, timings={k: round(v, 2) for k, v in timings.items()},
                        skipped=skipped)
    write_report_files(report, audio, samples_per_group, meta={"split": split, "model": str(model) if not hasattr(model, "translate") else "engine"})
    if log_mlflow:
        log_report(report, run_name=run_name, tags=run_tags)
    return report


class _TimedMOS:
    """A MOS predictor that adds up the seconds its ``score`` calls take (reported as ``mos_s``)."""

    def __init__(self, predictor: Any) -> None:
        self.predictor, self.seconds = predictor, 0.0

    def score(self, wavs: list[np.ndarray]) -> list[float]:
        t0 = time.perf_counter()
        try:
            return self.predictor.score(wavs)
        finally:
            self.seconds += time.perf_counter() - t0


def _mos_predictor(mos: Any) -> Any | None:
    """``False`` -> no MOS; ``None`` -> ``DNSMOS()`` (one onnxruntime thread); else the given predictor."""
    if mos is False:
        return None
    if mos is None:
        from uniss.engines.mos import DNSMOS

        mos = DNSMOS()
    return _TimedMOS(mos)


def evaluate_step(bundle_dir: str, data_dir: str, split: str, directions: Sequence[str], modes: Sequence[str],
                  limit: int | None, report_dir: str) -> dict[str, float]:
    """Pipeline component entry (``components/evaluation.py`` ``evaluate_model``): evaluate a bundle,
    write the report into ``report_dir`` (its ``samples.html`` is the component's HTML artifact),
    log to the active MLflow run when tracking is configured; returns the flat metrics (NaN dropped;
    a skipped direction has none, and the gate step refuses the model for it).

    Raises:
        EvaluationError: as :func:`evaluate` (e.g. no ``split`` rows in any of ``directions``).
    """
    rep = evaluate(bundle_dir, data_dir, split=split, directions=tuple(directions), modes=tuple(modes),
                   limit=limit if limit and limit > 0 else None, out_dir=report_dir)
    return {k: v for k, v in rep.metrics.items() if not math.isnan(v)}
