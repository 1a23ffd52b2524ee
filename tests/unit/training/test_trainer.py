"""Trainer: errors before compute; a real 2-rank DeepSpeed ZeRO-3 CPU run whose loss falls and
whose export loads; SIGKILL of the launcher mid-phase and resume from the last checkpoint."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from training.config import ConfigError
from training.data import DataError
from training.metric_logging import read_jsonl
from training.synthetic import make_synthetic_dataset
from training.trainer import TrainError, lr_lambda, prepare_phase, run_phase
from training.config import load_config

SMALL = ["seq_len=512", "batch_tokens=1024", "text_vocab_size=300"]


def test_unknown_key_fails_before_compute(tiny_data, tmp_path):
    with pytest.raises(ConfigError, match="bogus"):
        run_phase(1, "tiny_phase1.yaml", tiny_data, tmp_path / "b", overrides=["bogus=1"], work_dir=tmp_path / "w")
    assert not (tmp_path / "w").exists()


def test_phase2_without_phase1_weights_fails_before_compute(tiny_data, tmp_path):
    with pytest.raises(TrainError, match="phase-1 weights"):
        run_phase(2, "tiny_phase2.yaml", tiny_data, tmp_path / "b", work_dir=tmp_path / "w")
    with pytest.raises(TrainError, match="does not exist"):
        run_phase(2, "tiny_phase2.yaml", tiny_data, tmp_path / "b", init_bundle=tmp_path / "missing", work_dir=tmp_path / "w")
    with pytest.raises(ConfigError, match="phase 1, not phase 2"):
        run_phase(2, "tiny_phase1.yaml", tiny_data, tmp_path / "b", init_bundle=tmp_path, work_dir=tmp_path / "w")
    assert not (tmp_path / "w").exists()


def test_unvalidated_or_corrupt_data_fails_before_compute(tmp_path):
    bad = make_synthetic_dataset(tmp_path / "bad", 4, validated=False)
    with pytest.raises(DataError, match="did not pass validation"):
        run_phase(1, "tiny_phase1.yaml", bad, tmp_path / "b", work_dir=tmp_path / "w")
    good = make_synthetic_dataset(tmp_path / "good", 4)
    shard = next((good / "shards").glob("*.parquet"))
    shard.write_bytes(shard.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(DataError, match="md5"):
        run_phase(1, "tiny_phase1.yaml", good, tmp_path / "b", work_dir=tmp_path / "w")
    assert not (tmp_path / "w").exists()


def test_lr_schedules_follow_the_paper():
    p1 = load_config("tiny_phase1", ["optim.warmup_steps=10"])
    f = lr_lambda(p1, 100)
    assert f(0) == pytest.approx(0.1) and f(9) == 1.0 and f(50) == 1.0
    p2 = load_config("tiny_phase2")
    f = lr_lambda(p2, 200)  # 5% of 200 = 10 warm-up steps
    assert f(4) == pytest.approx(0.5) and f(10) == 1.0 and f(199) == 1.0
    p3 = load_config("tiny_phase3")
    f = lr_lambda(p3, 11)
    assert f(0) == 1.0 and f(10) == pytest.approx(0.1) and f(5) == pytest.approx(0.55)


def test_phase_mixture_is_prepared_from_the_data(tiny_data, tmp_path):
    wd = prepare_phase(1, "tiny_phase1.yaml", tiny_data, overrides=SMALL, work_dir=tmp_path / "w")
    run = json.loads((wd / "run.json").read_text())
    assert set(run["packing"]["task_counts"]) == {"asr", "s2tt", "tts", "mt"}
    assert run["packing"]["useful_share"] > 0.9 and run["codec"]["sizes"]["semantic"] == 128
    assert (wd / "start" / "vocab.json").is_file()


# ---------------------------------------------------------------------------------- slow, real ZeRO-3
_LAUNCH = """
import sys
from training.trainer import run_phase
run_phase(1, "tiny_phase1.yaml", sys.argv[1], sys.argv[2], overrides=sys.argv[4:], work_dir=sys.argv[3], timeout_s=900)
"""


def _metrics(work):
    return [r for r in read_jsonl(Path(work) / "metrics.jsonl") if r.get("kind") == "metrics" and "loss" in r]


@pytest.fixture(scope="module")
def killed_and_resumed(tiny_data, tmp_path_factory):
    """Phase 1 with 12 steps, checkpoint every 4: SIGKILL the launcher after step 6, rerun."""
    root = tmp_path_factory.mktemp("resume")
    work, out = root / "work", root / "bundle"
    ovr = SMALL + ["max_steps=12", "checkpoint_every=4", "optim.warmup_steps=4"]
    cmd = [sys.executable, "-c", _LAUNCH, str(tiny_data), str(out), str(work), *ovr]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    try:
        while time.time() - t0 < 600:
            if proc.poll() is not None:
                pytest.fail(f"launcher exited early with {proc.returncode}")
            if any(r["step"] >= 6 for r in _metrics(work)):
                break
            time.sleep(0.2)
        else:
            pytest.fail("no progress within 600 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = {r["step"]: r for r in _metrics(work)}
    time.sleep(3)  # ranks die with their launcher (PR_SET_PDEATHSIG)
    leftover = subprocess.run(["pgrep", "-f", f"--work {work}"], capture_output=True, text=True).stdout.split()
    bundle = run_phase(1, "tiny_phase1.yaml", tiny_data, out, overrides=ovr, work_dir=work, timeout_s=900)
    return {"work": work, "bundle": bundle, "before": before, "leftover": leftover}


@pytest.mark.slow
def test_zero3_two_rank_run_loss_falls_and_export_loads(killed_and_resumed):
    from uniss.bundle import load_bundle

    losses = {r["step"]: r["loss"] for r in _metrics(killed_and_resumed["work"])}  # last logged value per step
    assert sorted(losses) == list(range(1, 13))
    assert (losses[11] + losses[12]) / 2 < (losses[1] + losses[2]) / 2 - 0.2
    mb = load_bundle(killed_and_resumed["bundle"], with_codec=False)
    meta = mb.meta
    assert meta["phase"] == 1 and meta["train_metrics"]["steps"] == 12 and meta["shard_md5s"]
    assert meta["codec_fingerprint"] and (killed_and_resumed["bundle"] / "codec" / "manifest.json").is_file()
    assert mb.model.get_input_embeddings().weight.shape[0] % 64 == 0


@pytest.mark.slow
def test_resume_after_sigkill_continues_step_lr_and_data(killed_and_resumed):
    work, before = killed_and_resumed["work"], killed_and_resumed["before"]
    assert killed_and_resumed["leftover"] == [], "ranks outlived their launcher"
    recs = read_jsonl(work / "metrics.jsonl")
    resume = [r for r in recs if r.get("event") == "resume"]
    assert len(resume) == 1
    s = resume[0]["step"]
    assert s in (4, 8) and s < max(before)  # resumed from the last checkpoint, not from scratch
    assert resume[0]["packs_consumed"] == s * 2 * 1  # 2 ranks x grad-accum 1 x 1 pack
    after = [r for r in recs[recs.index(resume[0]) :] if r.get("kind") == "metrics" and "loss" in r]
    assert after[0]["step"] == s + 1
    # same step -> same LR and (same weights + same data position) -> same loss as before the kill
    assert after[0]["lr"] == pytest.approx(before[s + 1]["lr"])
    assert after[0]["loss"] == pytest.approx(before[s + 1]["loss"], abs=1e-3)
