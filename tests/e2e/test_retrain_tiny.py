"""End-to-end: ``uniss retrain --local --size tiny`` on a real embedded stack (SeaweedFS S3 +
MLflow), every step of the pipeline (real TTS speech in both directions -> UniST -> codec ->
GE gate -> DVC push -> ZeRO-3 phases 1-3 -> evaluation -> gate -> registry -> deploy manifest),
then the same run again served from the kfp.local cache, then ``uniss translate`` on a real
LibriVox clip with the model the pipeline produced."""

import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from pipelines.runner import retrain_arguments, run_local


pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]


def _librivox_clip() -> Path:
    out = subprocess.run(["dpkg", "-L", "pocketsphinx-testdata"], capture_output=True, text=True, check=True).stdout
    wavs = sorted(p for p in out.split() if "librivox" in p and p.endswith(".wav"))
    assert wavs, "pocketsphinx-testdata has no LibriVox clips"
    return Path(wavs[0])


@pytest.fixture(scope="module")
def first_run(stack):
    return run_local("retrain", retrain_arguments("tiny"), settings=stack)


def test_every_step_runs_and_logs_a_nested_mlflow_run(first_run):
    steps = [s["step"] for s in first_run.steps]
    for step in ("build_source", "synthesize_unist", "fit_codec", "tokenize_unist", "validate_unist",
                 "version_unist", "checkout_unist", "phase-1", "phase-2", "phase-3", "evaluate_model",
                 "register_model", "gate_model"):
        assert step in steps, f"{step} did not log a run: {steps}"
    s = first_run.summary
    assert s["data_version"].startswith("v"), s
    assert s["model_version"], "every trained candidate is registered"
    if s["promoted"]:
        assert "deploy_model" in steps and "promote_model" in steps
    else:
        assert s["reasons"], "a refused challenger must carry the gate's reasons"
        assert "record_rejection" in steps
    assert "uniss serve --model models:/uniss-s2st" in s["serve_command"]


def test_second_run_is_served_from_cache(stack, first_run):
    again = run_local("retrain", retrain_arguments("tiny"), settings=stack)
    assert again.steps == [], f"steps re-ran although nothing changed: {again.steps}"
    assert again.summary == first_run.summary
    print(f"cache ratio: second/first wall time = {again.wall_s:.1f}/{first_run.wall_s:.1f} = {again.wall_s / first_run.wall_s:.3f}")


def test_translate_real_librivox_clip_with_the_registered_model(stack, first_run, tmp_path):
    alias = "champion" if first_run.summary["promoted"] else "challenger"
    out = tmp_path / "out.wav"
    res = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "translate", str(_librivox_clip()), "--to", "zh", "--mode", "quality",
         "-o", str(out), "--model", f"models:/uniss-s2st@{alias}"],
        capture_output=True, text=True, timeout=600,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    info = sf.info(str(out))
    assert info.samplerate == 16000 and info.frames > 0
