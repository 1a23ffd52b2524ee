"""Export of a finished phase: DeepSpeed ZeRO-3 shards -> fp32 weights -> a model bundle.

DeepSpeed's ``zero_to_fp32`` consolidates the ``latest`` ZeRO-3 checkpoint of ``WORKDIR/ds``
(training/checkpointer.py) into one fp32 state dict; it is checked against the phase's start
model (keys must match, STYLE.md #14) and written with ``uniss.bundle.save_bundle`` together with
the tokenizer, vocab layout and codec (docs/design.md "Model bundle"), plus the phase's
``metrics.jsonl`` and ``loss_curve.png``. A recipe s2st-omni phase trained ``OmniLM(lm, adapter)``:
its ``lm.*`` weights become ``model/`` and its ``adapter.*`` weights ``adapter/`` (``uniss.omni``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from training.config import TrainConfig
from training.workdir import (
    CONFIG_FILE,
    DONE_FILE,
    DS_DIR,
    METRICS_FILE,
    RUN_FILE,
    START_DIR,
    TrainError,
    read_mlflow_run_id,
)
from uniss.jsonio import read_json

__all__ = ["export_bundle"]


def export_bundle(work: str | Path, out_dir: str | Path) -> Path:
    """Consolidate the last ZeRO-3 checkpoint of a finished phase (DeepSpeed ``zero_to_fp32``)
    into a model bundle (``uniss.bundle.save_bundle``) with the tokenizer, vocab layout and codec.

    Args:
        work: the phase's work directory (training/workdir.py).
        out_dir: bundle directory; an existing one (KFP's output dir) is emptied and filled in place.

    Returns:
        ``out_dir`` as a ``Path``.

    Raises:
        TrainError: the phase has not finished (no ``done.json``/checkpoint), or the consolidated
            weights do not match the start model's keys.
    """
    import torch

    if not torch.cuda.is_available():  # else DeepSpeed's accelerator probe warns "Setting accelerator to CPU"
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # (deepspeed/accelerator/real_accelerator.py), as launch.py does
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    from uniss.bundle import load_bundle_tokenizer, save_bundle
    from uniss.lm import load_checked_model

    w = Path(work)
    if not (w / DONE_FILE).is_file() or not (w / DS_DIR / "latest").is_file():
        raise TrainError(f"{w}: the phase has not finished; nothing to export")
    cfg = TrainConfig.model_validate(read_json(w / CONFIG_FILE, what="phase config", error=TrainError))
    run = read_json(w / RUN_FILE, what="run record", error=TrainError)
    done = read_json(w / DONE_FILE, what="done record", error=TrainError)
    model = load_checked_model(w / START_DIR / "model")
    sd = get_fp32_state_dict_from_zero_checkpoint(str(w / DS_DIR))
    adapter = None
    if cfg.recipe == "s2st-omni":  # the trained module was OmniLM(lm, adapter) (training/omni.py)
        from uniss.omni import ADAPTER_DIR, load_adapter

        adapter = load_adapter(w / START_DIR / ADAPTER_DIR)
        a_sd = {k[len("adapter."):]: v for k, v in sd.items() if k.startswith("adapter.")}
        if set(a_sd) != set(adapter.state_dict()):
            raise TrainError(f"consolidated checkpoint has adapter keys {sorted(a_sd)[:5]}, expected {sorted(adapter.state_dict())[:5]}")
        adapter.load_state_dict(a_sd, strict=True)
        sd = {k[len("lm."):]: v for k, v in sd.items() if k.startswith("lm.")}
    expected = set(model.state_dict())
    tied = bool(model.config.tie_word_embeddings)
    missing = [k for k in expected if k not in sd and not (tied and k == "lm_head.weight")]
    unexpected = [k for k in sd if k not in expected]
    if missing or unexpected:
        raise TrainError(f"consolidated checkpoint does not match the model: missing={missing[:5]} unexpected={unexpected[:5]}")
    model.load_state_dict(sd, strict=False)
    if tied:
        model.tie_weights()
    tok, vocab = load_bundle_tokenizer(w / START_DIR)
    meta = {
        "recipe": cfg.recipe, "phase": cfg.phase, "size": cfg.size, "data_version": run.get("data_version"),
        "shard_md5s": run.get("shard_md5s", []), "codec_fingerprint": run["codec"]["fingerprint"],
        "config": cfg.model_dump(mode="json"), "overrides": run.get("overrides", []),
        "init_bundle": run.get("init_bundle"),
        "train_metrics": {**done, "packing_useful_share": run["packing"]["useful_share"],
                          "n_packs": run["packing"]["n_packs"], "n_samples": run["packing"]["n_samples"]},
    }
    rid = read_mlflow_run_id(w)
    if rid is not None:
        meta["mlflow_run_id"] = rid
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    save_bundle(tmp, model=model, tokenizer=tok, vocab=vocab, codec_dir=run["codec"]["path"], meta=meta)
    if adapter is not None:
        from uniss.omni import save_adapter

        save_adapter(adapter, tmp / ADAPTER_DIR)
    if (w / "loss_curve.png").is_file():
        shutil.copy2(w / "loss_curve.png", tmp / "loss_curve.png")
    shutil.copy2(w / METRICS_FILE, tmp / METRICS_FILE)
    out.mkdir(parents=True, exist_ok=True)  # KFP hands over an existing output dir: fill it in place
    for p in out.iterdir():
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    for p in tmp.iterdir():
        shutil.move(str(p), out / p.name)
    tmp.rmdir()
    return out

