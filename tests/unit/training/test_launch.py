"""Launcher (training/launch.py): errors before compute; the launcher interface; a real 2-rank
DeepSpeed ZeRO-3 CPU run through torchrun whose loss falls and whose export loads; SIGKILL of the
launcher mid-phase and resume from the last checkpoint."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from training.config import ConfigError
from training.data import DataError
from training.launch import Launcher, TorchrunLauncher, TrainError, run_phase, run_phases_step
from training.metric_logging import read_jsonl
from training.synthetic import make_synthetic_dataset

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


def test_bad_phase_list_fails_before_compute(tiny_data, tmp_path):
    for phases in ([], [2, 1], [1, 4]):
        with pytest.raises(TrainError, match="increasing list"):
            run_phases_step(phases=phases, model_size="tiny", data_dir=str(tiny_data), data_version=None,
                            overrides=[], nproc=2, out_dir=str(tmp_path / "b"))


def test_torchrun_command_runs_the_recipe_module(tmp_path):
    cmd = TorchrunLauncher().command(tmp_path / "w", 3)
    assert cmd[:4] == [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    assert cmd[4:] == ["--nproc_per_node=3", "-m", "training.recipe", "worker", "--work", str(tmp_path / "w")]
    # the child finds its entry point: the module parses the worker command line
    r = subprocess.run([sys.executable, "-m", "training.recipe", "worker", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--work" in r.stdout


class _ScriptLauncher(TorchrunLauncher):
    """TorchrunLauncher whose "ranks" are one Python script (the real wait / exit-code handling)."""

    def __init__(self, script: str):
        object.__setattr__(self, "script", script)

    def command(self, work, nproc):
        return [sys.executable, "-c", self.script, str(work)]


_DONE_THEN_ABORT = "import os, sys, pathlib; pathlib.Path(sys.argv[1], 'done.json').write_text('{}'); os.abort()"


def test_a_crash_at_exit_after_the_phase_is_done_is_not_a_failure(tmp_path):
    """CI 2026-12-04: a rank died of SIGABRT ("terminate called without an active exception") after
    destroying its process group; done.json (written after every rank's barrier) was there, so the
    phase had finished. Without done.json the same exit is a TrainError."""
    work = tmp_path / "w"
    work.mkdir()
    _ScriptLauncher(_DONE_THEN_ABORT).launch(work, 2)
    assert (work / "done.json").is_file()
    assert "a crash at process exit, the phase is done" in (work / "launcher.log").read_text()
    crashed = tmp_path / "c"
    crashed.mkdir()
    with pytest.raises(TrainError, match="training ranks failed"):
        _ScriptLauncher("import os; os.abort()").launch(crashed, 2)


class _FailingLauncher:
    """A stand-in engine: records the call and fails like crashed ranks."""

    def __init__(self):
        self.calls = []

    def launch(self, work, nproc, timeout_s=None):
        self.calls.append((work, nproc, timeout_s))
        raise TrainError("ranks failed")


def test_run_phase_hands_the_prepared_work_dir_to_its_launcher(tiny_data, tmp_path):
    eng: Launcher = _FailingLauncher()
    with pytest.raises(TrainError, match="ranks failed"):
        run_phase(1, "tiny_phase1.yaml", tiny_data, tmp_path / "b", overrides=SMALL, nproc=3,
                  work_dir=tmp_path / "w", timeout_s=5, launcher=eng)
    assert eng.calls == [(tmp_path / "w", 3, 5)]
    assert (tmp_path / "w" / "packs.npz").is_file() and not (tmp_path / "b").exists()


# ---------------------------------------------------------------------------------- slow, real ZeRO-3
_LAUNCH = """
import sys
from training.launch import run_phase
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
    for r in _metrics(killed_and_resumed["work"]):  # every rank's peak RSS (GiB) rides on each logged step
        assert 0 < r["peak_rss_gib_rank0"] < 64 and 0 < r["peak_rss_gib_rank1"] < 64
        assert r["peak_rss_gib_max"] == max(r["peak_rss_gib_rank0"], r["peak_rss_gib_rank1"])
    mem = [r for r in read_jsonl(killed_and_resumed["work"] / "metrics.jsonl") if r.get("event") == "memory"]
    assert mem and all(len(r["peak_rss_gib"]) == 2 for r in mem)
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


def test_recipe_variants_fail_before_compute(tiny_data, tmp_path):
    kw = dict(model_size="tiny", data_dir=str(tiny_data), data_version=None, overrides=[], nproc=2, out_dir=str(tmp_path / "b"))
    with pytest.raises(TrainError, match="recipe must be one of"):
        run_phases_step(phases=[1], recipe="cascade", **kw)
    with pytest.raises(TrainError, match="runs all of its phases"):
        run_phases_step(phases=[1, 2], recipe="mslm", **kw)
    with pytest.raises(TrainError, match="runs all of its phases"):
        run_phases_step(phases=[2], recipe="s2st-omni", **kw)
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("recipe, phases, expected", [
    ("uniss", [1, 3], [(1, "tiny_phase1.yaml", False), (3, "tiny_phase3.yaml", True)]),
    ("mslm", [], [(1, "tiny_mslm.yaml", False)]),
    ("s2st-omni", [1, 2], [(1, "tiny_phase1.yaml", False), (1, "tiny_omni_stage1.yaml", True), (2, "tiny_omni_stage2.yaml", True)]),
])
def test_recipe_variants_run_their_configs_in_order(monkeypatch, tmp_path, recipe, phases, expected):
    """Each recipe's steps (training.launch.RECIPE_STEPS) run in order, each later one from the
    previous bundle (S2ST-Omni's stage 1 from the UniSS phase-1 LM); the shipped configs exist."""
    import json

    import training.launch as L
    from training.config import load_config

    calls = []

    def fake_run_phase(p, config, data_dir, out, init_bundle=None, **kw):
        calls.append((p, config, init_bundle is not None))
        load_config(config)  # a shipped config of that name
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "bundle.json").write_text(json.dumps({"train_metrics": {"loss_end": 1.0 + p}}))
        return Path(out)

    monkeypatch.setattr(L, "run_phase", fake_run_phase)
    monkeypatch.setenv("UNISS_CHECKPOINT_ROOT", str(tmp_path / "ckpt"))
    info = run_phases_step(phases=phases, model_size="tiny", data_dir=str(tmp_path), data_version="v1", overrides=[],
                           nproc=2, out_dir=str(tmp_path / "b"), run_name=recipe, recipe=recipe)
    assert calls == expected
    assert info["recipe"] == recipe and info[f"step{len(expected)}_loss_end"] == 1.0 + expected[-1][0]
