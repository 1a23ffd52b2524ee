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

from pipelines.runner import PARAMS_FILE, retrain_arguments, run_local


pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]


def _librivox_clip() -> Path:
    out = subprocess.run(["dpkg", "-L", "pocketsphinx-testdata"], capture_output=True, text=True, check=True).stdout
    wavs = sorted(p for p in out.split() if "librivox" in p and p.endswith(".wav"))
    assert wavs, "pocketsphinx-testdata has no LibriVox clips"
    return Path(wavs[0])


@pytest.fixture(scope="module")
def champion_before(stack):
    """(version, eval metrics) of the ``champion`` the tiny run is gated against (None on a fresh stack)."""
    from registry import models as R

    v = R.alias_version(R.CHAMPION)
    return v, (R.version_metrics(v) if v else None)


@pytest.fixture(scope="module")
def first_run(stack, champion_before):
    return run_local("retrain", retrain_arguments("tiny"), settings=stack)


def _step_run(first_run, step: str):
    from mlflow import MlflowClient

    ids = [s["run_id"] for s in first_run.steps if s["step"] == step]
    assert len(ids) == 1, f"expected one {step} run: {first_run.steps}"
    return MlflowClient().get_run(ids[0])


def test_every_step_runs_and_logs_a_nested_mlflow_run(first_run):
    steps = [s["step"] for s in first_run.steps]
    for step in ("build_source", "synthesize_unist", "fit_codec", "tokenize_unist", "validate_unist",
                 "version_unist", "checkout_unist", "phase-1", "phase-2", "phase-3", "evaluate_model",
                 "register_model", "gate_model"):
        assert step in steps, f"{step} did not log a run: {steps}"
    s = first_run.summary
    assert s["data_version"].startswith("v"), s
    assert s["model_version"], "every trained candidate is registered"
    assert "uniss serve --model models:/uniss-s2st" in s["serve_command"]


def test_gate_outcome_matches_decide_and_aliases_follow_it(first_run, champion_before):
    """The pipeline's gate decision equals ``uniss.gate.decide`` recomputed here from the metrics the
    evaluate_model step logged, the champion it was gated against and params.yaml's thresholds;
    the registry aliases follow that decision (champion + deploy iff passed, else challenger + a
    rejection record).

    The tiny run must be refused: its model is trained for ``max_steps=4`` per phase
    (params.yaml ``pipeline.tiny``), so its Speech-BLEU on the eval split is ~0, below the absolute
    ``gate.floors.speech_bleu`` (1.0 BLEU), whichever champion there is."""
    from mlflow import MlflowClient

    from registry import models as R
    from uniss.gate import decide, load_thresholds

    thresholds = load_thresholds(PARAMS_FILE)
    logged = _step_run(first_run, "evaluate_model").data.metrics
    champ_version, champ_metrics = champion_before
    expected = decide(logged, champ_metrics, thresholds)
    gated = {c.key: logged[c.key] for c in expected.checks if c.key in logged}
    assert gated, f"evaluate_model logged no gated metric: {sorted(logged)}"

    s = first_run.summary
    version = s["model_version"]
    c = MlflowClient()
    registered = R.version_metrics(version)
    assert {k: registered[k] for k in gated} == pytest.approx(gated), "registered eval_metrics differ from the logged ones"

    assert s["promoted"] is expected.passed, (s, expected.summary())
    assert not expected.passed, f"a 4-step tiny model cleared the gate: {expected.summary()}"
    # (a NaN BLEU is dropped by evaluate_step, so the floor check then reports it missing)
    assert any(r.startswith("speech_bleu.") and ("< floor 1" in r or "missing" in r) for r in expected.reasons), expected.reasons

    steps = [x["step"] for x in first_run.steps]
    aliases = set(c.get_model_version(R.MODEL_NAME, version).aliases)
    if expected.passed:
        assert "champion" in aliases and R.alias_version(R.CHAMPION) == version
        assert "promote_model" in steps and "deploy_model" in steps and "record_rejection" not in steps
    else:
        assert aliases == {"challenger"}, aliases
        assert R.alias_version(R.CHAMPION) == champ_version, "a refused challenger must not move the champion"
        assert "record_rejection" in steps and "promote_model" not in steps and "deploy_model" not in steps
        assert s["reasons"] == expected.reasons
        # the gate_model and record_rejection steps each log the refusal in experiment uniss-gate
        parents = {first_run.parent_run_id, _step_run(first_run, "gate_model").info.run_id,
                   _step_run(first_run, "record_rejection").info.run_id}
        logged_gates = [r for r in c.search_runs([c.get_experiment_by_name(R.GATE_EXPERIMENT).experiment_id], max_results=1000)
                        if r.data.tags.get("mlflow.parentRunId") in parents]
        assert logged_gates, "no gate decision was logged under this pipeline run"
        assert all(r.data.tags["gate.passed"] == "False" for r in logged_gates), [r.data.tags for r in logged_gates]


def test_second_run_is_served_from_cache(stack, first_run):
    again = run_local("retrain", retrain_arguments("tiny"), settings=stack)
    assert again.steps == [], f"steps re-ran although nothing changed: {again.steps}"
    assert again.summary == first_run.summary
    print(f"cache ratio: second/first wall time = {again.wall_s:.1f}/{first_run.wall_s:.1f} = {again.wall_s / first_run.wall_s:.3f}")


def test_translate_real_librivox_clip_with_the_registered_model(stack, first_run, tmp_path):
    alias = "champion" if first_run.summary["promoted"] else "challenger"  # the gate outcome is asserted above
    out = tmp_path / "out.wav"
    res = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "translate", str(_librivox_clip()), "--to", "zh", "--mode", "quality",
         "-o", str(out), "--model", f"models:/uniss-s2st@{alias}"],
        capture_output=True, text=True, timeout=600,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    info = sf.info(str(out))
    assert info.samplerate == 16000 and info.frames > 0
