"""Phase work directories: what a phase needs before any compute, keyed so a rerun resumes.

A work directory (``WORKDIR``, one per phase and inputs) holds::

    config.json      the validated TrainConfig (training/config.py)
    start/           model/ tokenizer/ vocab.json the phase begins from (a bundle without codec;
                     recipe s2st-omni: also adapter/)
    packs.npz        packed (or padded) sequences: input_ids, labels, position_ids (N, seq_len)
                     int32; n_real (N,) int64 real tokens per sequence; recipe s2st-omni also
                     features (P_total, k * 512) float16 and feature_offsets (N + 1,) int64
                     (training/omni.py)
    run.json         data version, shard md5s, codec, init bundle, packing statistics
    ds/              DeepSpeed ZeRO-3 checkpoints (training/checkpointer.py)
    metrics.jsonl    what the ranks logged (training/metric_logging.py)
    mlflow_run_id    the phase's MLflow run, so a resumed phase keeps logging into it
    done.json        written by the recipe when the phase finished

Its name is keyed by the config, the shard md5s and the init bundle's identity (not the data
path, which changes between KFP retries), under :func:`checkpoint_root`, so rerunning the same
call finds its checkpoints and resumes (docs/design.md "Model bundle", training paragraph).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from training.config import ConfigError, TrainConfig, load_config, resolve_config_path
from training.data import DataError, check_dataset, codec_info, has_alignment, load_alignment_rows, load_rows
from uniss.errors import UnissError
from uniss.jsonio import read_json

__all__ = [
    "CONFIG_FILE",
    "DONE_FILE",
    "DS_DIR",
    "METRICS_FILE",
    "MLFLOW_RUN_ID_FILE",
    "PACKS_FILE",
    "RUN_FILE",
    "START_DIR",
    "TrainError",
    "checkpoint_root",
    "phase_mlflow_logger",
    "prepare_phase",
    "read_mlflow_run_id",
    "work_dir_for",
]

#: Formats of paper §3.3 phase 1 (speech-text alignment); the only ones the alignment corpus feeds.
PHASE1_FORMATS = frozenset({"asr", "s2tt", "tts", "mt"})
#: Files inside a phase work directory.
CONFIG_FILE = "config.json"
START_DIR = "start"  # model/ tokenizer/ vocab.json the phase starts from
PACKS_FILE = "packs.npz"
DS_DIR = "ds"
METRICS_FILE = "metrics.jsonl"
RUN_FILE = "run.json"
DONE_FILE = "done.json"
MLFLOW_RUN_ID_FILE = "mlflow_run_id"


class TrainError(UnissError, ValueError):
    """A phase that cannot start (missing init weights, wrong phase, bad data) or that failed."""


def checkpoint_root() -> Path:
    """Where phase work directories live: env ``UNISS_CHECKPOINT_ROOT`` (a PVC on clusters), else
    ``<UNISS_HOME>/checkpoints``."""
    root = os.environ.get("UNISS_CHECKPOINT_ROOT")
    if root:
        return Path(root)
    from uniss.settings import get_settings

    return get_settings().home_dir / "checkpoints"


#: Config fields added after work directories existed: ``(section or None, field, value)``. A field at that
#: value (unset, off, or the default recipe) is left out of the work-dir key, so existing work directories
#: keep their key and resume; set to anything else, it changes the key.
_KEY_OF_BEFORE: tuple[tuple[str | None, str, Any], ...] = (
    ("zero", "stage3_max_live_parameters", None),
    ("zero", "stage3_max_reuse_distance", None),
    ("zero", "sub_group_size", None),
    ("data", "alignment", False),
    ("data", "speech_input_noise", 0.0),
    ("data", "interleave_words", False),
    ("data", "translation_upsample", 1),  # unset in every UniSS config
    ("data", "format_repeat", {}),  # unset in every shipped config
    (None, "recipe", "uniss"),
    (None, "omni", None),  # only recipe s2st-omni has the section
)


def work_dir_for(cfg: TrainConfig, manifest: dict[str, Any], init_meta: dict[str, Any] | None, data_dir: str | Path) -> Path:
    """Stable work directory keyed by the inputs (config, shard md5s, init bundle identity; not the
    data path, which changes between KFP retries), so a rerun finds its checkpoints and resumes."""
    # ``cluster`` (where the phase runs, training/trainjob.py) is left out, as the local rank
    # count is: it does not change what is trained, and existing work directories keep their key.
    conf = cfg.model_dump(mode="json", exclude={"cluster"})
    for section, k, default in _KEY_OF_BEFORE:
        d = conf if section is None else conf[section]
        if d.get(k) == default:
            d.pop(k, None)
    key = {
        "config": conf,
        "shards": sorted(s.get("md5", s["path"]) for s in manifest.get("shards", [])),
        "init": None if init_meta is None else {k: init_meta.get(k) for k in ("created_at", "phase", "git_commit", "train_metrics")},
    }
    if cfg.data.alignment and manifest.get("alignment"):  # the alignment corpus is an input too
        key["alignment"] = manifest["alignment"].get("md5")
    h = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    prefix = "" if cfg.recipe == "uniss" else f"{cfg.recipe}_"
    return checkpoint_root() / f"{prefix}{cfg.size}_phase{cfg.phase}_{h}"


def _alignment_rows(cfg: TrainConfig, data_dir: Path) -> list[dict[str, Any]]:
    """The alignment corpus rows when ``data.alignment`` is on and the dataset has one (own data and
    the released UniST have none), else ``[]``."""
    return load_alignment_rows(data_dir) if cfg.data.alignment and has_alignment(data_dir) else []


def _text_encoder(tok):
    def enc(s: str) -> list[int]:
        return tok.encode(s, add_special_tokens=False)

    return enc


def _build_start(cfg: TrainConfig, data_dir: Path, init_bundle: Path | None, codec: dict[str, Any], start: Path) -> None:
    """Write ``start/`` = the weights, tokenizer and vocab the phase begins from."""
    from uniss.bundle import load_bundle_tokenizer, save_bundle
    from uniss.lm import (
        build_lm,
        build_speech_tokenizer,
        expand_vocab,
        load_checked_model,
        load_pretrained,
        train_text_tokenizer,
        vocab_for,
    )

    import torch

    tmp = start.with_name(start.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    layout = "paper" if codec["backend"] == "paper" else "lite"
    if init_bundle is not None:
        tok, vocab = load_bundle_tokenizer(init_bundle)
        if vocab.sizes["speaker"] != codec["sizes"]["speaker"] or vocab.sizes["semantic"] != codec["sizes"]["semantic"] \
                or vocab.sizes["linguistic"] != codec["sizes"]["linguistic"]:
            raise TrainError(f"init bundle {init_bundle} layout {vocab.sizes} does not match the dataset's codec sizes {codec['sizes']}")
        model = load_checked_model(init_bundle / "model", attn_implementation=cfg.attn_implementation)
    else:
        torch.manual_seed(cfg.seed)
        if cfg.pretrained:
            model, text_tok = load_pretrained(cfg.pretrained, attn_implementation=cfg.attn_implementation)
        else:
            rows = load_rows(data_dir, split="train", subset="general", max_rows=cfg.data.max_rows)
            rows = rows + _alignment_rows(cfg, data_dir)
            corpus = [str(r[k]) for r in rows for k in ("src_text", "tgt_text") if r.get(k)]
            text_tok = train_text_tokenizer(corpus, vocab_size=cfg.text_vocab_size)
            model = build_lm(cfg.size, len(text_tok), attn_implementation=cfg.attn_implementation)
        vocab = vocab_for(text_tok, codec["sizes"], layout=layout)
        tok = build_speech_tokenizer(text_tok, vocab)
        expand_vocab(model, vocab, tokenizer=tok)  # before DeepSpeed (ARCHITECTURE.md)
    save_bundle(tmp, model=model, tokenizer=tok, vocab=vocab, meta={"phase": cfg.phase - 1, "size": cfg.size, "kind": "start"})
    if cfg.recipe == "s2st-omni":  # the speech adapter beside the LM (training/omni.py)
        from training.omni import start_adapter

        start_adapter(cfg, model, init_bundle, tmp)
    shutil.rmtree(start, ignore_errors=True)
    tmp.rename(start)


def _build_packs(cfg: TrainConfig, data_dir: Path, start: Path, out: Path) -> dict[str, Any]:
    """Samples of the phase mixture -> packed (or padded) sequences saved as ``packs.npz``."""
    from training.packing import pack_samples, pad_samples
    from training.samples import build_phase_samples
    from uniss.bundle import load_bundle_tokenizer

    tok, vocab = load_bundle_tokenizer(start)
    text_size = vocab.text_size
    enc = _text_encoder(tok)
    # the text tokenizer is the first text_size ids of the model tokenizer: speech strings never
    # reach encode_text (SpeechVocab.encode routes them), so the model tokenizer is safe here.
    d = cfg.data
    rows = load_rows(data_dir, split=d.split, subset=d.subset, max_rows=d.max_rows, keep_audio=cfg.recipe == "s2st-omni")
    align = _alignment_rows(cfg, data_dir)
    if align and set(d.formats) <= PHASE1_FORMATS:  # phase 1: the alignment corpus beside UniST
        rows = rows + align
    if d.interleave_words and not any(r.get("src_words") is not None and len(r["src_words"]) for r in rows):
        raise TrainError(f"data.interleave_words needs the word alignment columns, and {data_dir} has none: tokenize "
                         "with `uniss data tokenize --align-words`")
    replay_rows = None
    if d.replay_formats and d.replay_ratio > 0:
        replay_rows = load_rows(data_dir, split=d.split, subset="general", max_rows=d.max_rows) + align
    extra: dict[str, np.ndarray] = {}
    if cfg.recipe == "s2st-omni":  # S2ST-Omni (training/omni.py): S2TT through the adapter, frozen features
        from training.omni import build_omni_samples, row_features

        feats = row_features(rows, both_sides=d.both_sides, cache_dir=checkpoint_root() / "omni_features")
        samples = build_omni_samples(vocab, enc, rows, feats, frame_stack=cfg.omni.frame_stack, both_sides=d.both_sides,
                                     seed=cfg.seed)
    elif cfg.recipe == "mslm":  # MSLM-S2ST (training/mslm.py): translation + generation, translation upsampled
        from training.mslm import build_mslm_samples

        samples = build_mslm_samples(vocab, enc, rows, formats=d.formats, both_sides=d.both_sides,
                                     upsample=d.translation_upsample, seed=cfg.seed)
    else:
        samples = build_phase_samples(vocab, enc, rows, formats=d.formats, replay_rows=replay_rows,
                                      replay_formats=d.replay_formats, replay_ratio=d.replay_ratio,
                                      both_sides=d.both_sides, use_linguistic=d.use_linguistic,
                                      interleave_words=d.interleave_words, format_repeat=d.format_repeat,
                                      seed=cfg.seed, progress=True)
    if cfg.pack:
        packs, stats = pack_samples(samples, cfg.seq_len, vocab.pad_id)
    else:  # baseline: one sample per sequence, padded to seq_len so micro-batches stack
        packs, stats = pad_samples(samples, 1, vocab.pad_id, max_len=cfg.seq_len, pad_to=cfg.seq_len)
    if not packs:
        raise TrainError("the phase mixture produced no trainable sequences")
    if cfg.recipe == "s2st-omni":  # each pack's adapter frames in placeholder order
        from training.omni import pack_features

        extra["features"], extra["feature_offsets"] = pack_features(packs, samples)
    np.savez(out, input_ids=np.stack([p.input_ids for p in packs]).astype(np.int32),
             labels=np.stack([p.labels for p in packs]).astype(np.int32),
             position_ids=np.stack([p.position_ids for p in packs]).astype(np.int32),
             n_real=np.asarray([p.n_real for p in packs], dtype=np.int64), **extra)
    tasks: dict[str, int] = {}
    for s in samples:
        tasks[s.task] = tasks.get(s.task, 0) + 1
    assert max(int(p.input_ids.max()) for p in packs) < vocab.total and text_size > 0
    return {"n_samples": stats.n_samples, "n_dropped": stats.n_dropped, "n_packs": stats.n_packs,
            "useful_share": stats.useful_share, "task_counts": tasks, "n_rows": len(rows),
            "alignment_rows": len(align)}


def prepare_phase(
    phase: int,
    config_path_or_name: str | Path,
    data_dir: str | Path,
    *,
    init_bundle: str | Path | None = None,
    overrides: list[str] | None = None,
    work_dir: str | Path | None = None,
    data_version: str | None = None,
) -> Path:
    """Everything that must hold before any compute, then the phase's work directory.

    Checks (each a :class:`TrainError`/``ConfigError``/``DataError`` before any training):
    the config loads (unknown keys rejected) and is for ``phase``; phases 2-3 have an init bundle
    that loads (tokenizer/vocab consistent); the dataset passed its validation gate and its
    shards' md5s match; the dataset's codec directory exists; the init bundle's codec matches
    the dataset's.

    Returns:
        The work directory (``config.json``, ``start/``, ``packs.npz``, ``run.json``).
    """
    from uniss.bundle import BundleError, read_bundle_meta

    cfg = load_config(config_path_or_name, overrides)
    if int(cfg.phase) != int(phase):
        raise ConfigError(f"config {config_path_or_name} is for phase {cfg.phase}, not phase {phase}")
    init_meta = None
    if phase > 1:
        if init_bundle is None:
            raise TrainError(f"phase {phase} starts from the phase-{phase - 1} weights: give init_bundle (--init BUNDLE)")
        ib = Path(init_bundle)
        if not ib.exists():
            raise TrainError(f"init bundle {ib} does not exist (run phase {phase - 1} first)")
        try:
            init_meta = read_bundle_meta(ib)
        except BundleError as e:
            raise TrainError(f"init bundle {ib} is not usable: {e}") from None
        if not (ib / "model" / "config.json").is_file():
            raise TrainError(f"init bundle {ib} has no model/ weights")
    elif init_bundle is not None:
        ib = Path(init_bundle)
        init_meta = read_bundle_meta(ib)
    data_dir = Path(data_dir)
    manifest = check_dataset(data_dir)
    codec_dir = data_dir / "codec"
    codec = codec_info(codec_dir)
    if manifest.get("codec_fingerprint") and manifest["codec_fingerprint"] != codec["fingerprint"]:
        raise DataError(f"{data_dir}: codec/ fingerprint {codec['fingerprint'][:12]} is not the one the data was tokenized with ({str(manifest['codec_fingerprint'])[:12]})")
    if init_meta and init_meta.get("codec_fingerprint") and init_meta["codec_fingerprint"] != codec["fingerprint"]:
        raise TrainError("the init bundle was trained with a different codec than this dataset's")
    wd = Path(work_dir) if work_dir is not None else work_dir_for(cfg, manifest, init_meta, data_dir)
    wd.mkdir(parents=True, exist_ok=True)
    (wd / CONFIG_FILE).write_text(json.dumps(cfg.model_dump(mode="json"), indent=2))
    start = wd / START_DIR
    if not (start / "bundle.json").is_file():
        _build_start(cfg, data_dir, None if init_bundle is None else Path(init_bundle), codec, start)
    run_path = wd / RUN_FILE
    if not (wd / PACKS_FILE).is_file() or not run_path.is_file():
        stats = _build_packs(cfg, data_dir, start, wd / "packs.tmp.npz")
        (wd / "packs.tmp.npz").rename(wd / PACKS_FILE)
        run = {
            "phase": phase, "config_name": Path(resolve_config_path(config_path_or_name)).name,
            "overrides": list(overrides or []), "data_dir": str(data_dir.resolve()),
            "data_version": data_version or manifest.get("version"),
            "shard_md5s": [s.get("md5") for s in manifest.get("shards", [])],
            "codec": codec, "init_bundle": None if init_bundle is None else str(Path(init_bundle).resolve()),
            "packing": stats,
        }
        run_path.write_text(json.dumps(run, indent=2, default=str))
    else:  # same shards, possibly at a new path (KFP retry): point at the current copy
        run = read_json(run_path, what="run record", error=TrainError)
        run.update({"data_dir": str(data_dir.resolve()), "codec": codec})
        run_path.write_text(json.dumps(run, indent=2, default=str))
    return wd


# =============================================================================== MLflow run id
def read_mlflow_run_id(work: str | Path) -> str | None:
    """The MLflow run id recorded in ``WORK/mlflow_run_id`` by a phase's rank 0, else ``None``."""
    rid = Path(work) / MLFLOW_RUN_ID_FILE
    return rid.read_text().strip() if rid.exists() else None


def phase_mlflow_logger(work: str | Path, phase: int):
    """The phase's :class:`~training.metric_logging.MLflowLogger` (run name ``phase-<N>``).

    A resumed phase (``WORK/mlflow_run_id`` exists) reopens its run, which moves under the
    rerun's parent run (``MLflowLogger``'s ``uniss.resumed_from_parent`` tag keeps the killed
    one); a new phase starts a run and records its id there.
    """
    from training.metric_logging import MLflowLogger

    ml = MLflowLogger(f"phase-{phase}", run_id=read_mlflow_run_id(work))
    (Path(work) / MLFLOW_RUN_ID_FILE).write_text(ml.run_id)
    return ml
