"""registry.models (and the pyfunc of registry.pyfunc) against a real MLflow server: register, gate-refused promote, promote, rollback,
aliases through MlflowClient, pyfunc load of ``models:/uniss-s2st@champion``.

Each test sets up the registry state it needs (its own model name, or its own champion for the
CLI, which works on ``uniss-s2st``), so the tests pass alone and in any order.

Uses the shared ``stack`` fixture (tests/conftest.py: MLflow + S3 on 127.0.0.1) when it exists;
otherwise starts its own MLflow server (SQLite, local artifact store) on a free loopback port.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import free_port

from uniss.settings import MODEL_NAME as NAME

pytestmark = pytest.mark.integration
VENV_BIN = Path(sys.executable).parent


def _fresh_name(prefix: str) -> str:
    """A registered-model name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def tracking_uri(request, tmp_path_factory):
    """Tracking URI of a real MLflow server (the ``stack`` fixture's, or one started here)."""
    try:
        stack = request.getfixturevalue("stack")
    except pytest.FixtureLookupError:
        stack = None
    if stack is not None:
        uri = next((getattr(stack, a) for a in ("tracking_uri", "mlflow_uri", "mlflow_url") if hasattr(stack, a)), None)
        if uri is None and isinstance(stack, dict):
            uri = stack.get("tracking_uri") or stack.get("mlflow_uri")
        assert uri, f"stack fixture exposes no tracking URI: {stack!r}"
        yield uri
        return
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = open(root / "server.log", "wb")
    proc = subprocess.Popen(
        [str(VENV_BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root}/mlflow.db", "--artifacts-destination", str(root / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    uri = f"http://127.0.0.1:{port}"
    import httpx

    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if httpx.get(f"{uri}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (root / "server.log").read_text()[-2000:]
            time.sleep(0.5)
        else:
            pytest.fail("MLflow server did not start in 90 s")
        yield uri
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def registry(tracking_uri):
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    mp.delenv("MLFLOW_PARENT_RUN_ID", raising=False)
    from registry import models as R

    yield R
    mp.undo()


def _tiny_bundle(out: Path, tag: str, codec_dir: Path | None = None) -> Path:
    """A real (untrained) bundle: BPE text tokenizer + speech tokens, a 2-layer Qwen2, bundle.json,
    and (when given) a fitted lite codec directory."""
    from uniss.bundle import save_bundle
    from uniss.lm import build_speech_tokenizer, train_text_tokenizer, uniss_lm, vocab_for

    sizes = {"speaker": 8, "semantic": 16, "linguistic": 8}
    if codec_dir is not None:
        from uniss.codecs import load_codec

        sizes = dict(load_codec(codec_dir).sizes)
    texts = ["hello world", "the cat sat on the mat", "我们的国家很大", "你好世界"] * 4
    text_tok = train_text_tokenizer(texts, vocab_size=300, min_frequency=1)
    vocab = vocab_for(text_tok, sizes)
    tok = build_speech_tokenizer(text_tok, vocab)
    model = uniss_lm("tiny", vocab.total, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2)
    meta = {"phase": 3, "size": "tiny", "data_version": f"data-{tag}", "shard_md5s": [f"md5-{tag}-0", f"md5-{tag}-1"],
            "codec_fingerprint": "sha256:test", "git_commit": "abc123"}
    return save_bundle(out / f"bundle-{tag}", model=model, tokenizer=tok, vocab=vocab, meta=meta, codec_dir=codec_dir)


def _metrics(en_zh: float, zh_en: float, slc02: float) -> dict[str, float]:
    m = {}
    for mode in ("quality", "performance"):
        m[f"speech_bleu.en-zh.{mode}"] = en_zh
        m[f"speech_bleu.zh-en.{mode}"] = zh_en
        for d in ("en-zh", "zh-en"):
            m[f"slc_0.2.{d}.{mode}"] = slc02
            m[f"slc_0.4.{d}.{mode}"] = min(1.0, slc02 + 0.1)
            m[f"text_bleu.{d}.{mode}"] = en_zh + 2
    return m


@pytest.mark.slow
def test_register_promote_refuse_rollback(registry, tmp_path_factory):
    R = registry
    from mlflow import MlflowClient

    c = MlflowClient()
    NAME = _fresh_name("uniss-s2st-lifecycle")  # noqa: N806 - a fresh model: the first promotion has no champion
    t0_ms = int(time.time() * 1000)  # gate runs carry no model name: this test's are the ones started since
    base = tmp_path_factory.mktemp("bundles")
    bundle = _tiny_bundle(base, "a")

    # three slices x many metrics: more than one 5,000-character tag holds (the e2e run with slices
    # once cut the eval_metrics JSON and could not read it back)
    sliced = {f"{k}/{sl}.{i}": 1.0 for k in _metrics(1, 1, 1) for sl in ("seen", "heldout", "real") for i in range(4)}
    v1 = R.register(bundle, metrics={**_metrics(20.0, 15.0, 0.8), **sliced}, pipeline_run_id="run-1", name=NAME)
    assert len(json.dumps(sliced)) > 5000
    got = R.version_metrics(v1, name=NAME)
    assert got["speech_bleu.en-zh.quality"] == 20.0 and all(got[k] == 1.0 for k in sliced)
    assert c.get_model_version_by_alias(NAME, "challenger").version == v1
    tags = c.get_model_version(NAME, v1).tags
    assert tags["data_version"] == "data-a" and json.loads(tags["shard_md5s"]) == ["md5-a-0", "md5-a-1"]
    assert tags["pipeline_run_id"] == "run-1" and tags["git_commit"] == "abc123"
    assert json.loads(tags["eval_metrics"]) == _metrics(20.0, 15.0, 0.8)  # whole-set metrics, slices in metric.* tags

    # first model: only floors apply
    d1 = R.promote(v1, name=NAME)
    assert d1.passed, d1.reasons
    assert c.get_model_version_by_alias(NAME, "champion").version == v1

    # worse challenger: refused with reasons, champion unchanged
    v2 = R.register(bundle, metrics=_metrics(12.0, 15.0, 0.5), name=NAME)
    d2 = R.promote(v2, name=NAME)
    assert not d2.passed
    assert any("speech_bleu.en-zh" in r and "regressed" in r for r in d2.reasons)
    assert any("slc_0.2" in r for r in d2.reasons)
    assert c.get_model_version_by_alias(NAME, "champion").version == v1
    assert c.get_model_version(NAME, v2).tags["gate.passed"] == "False"

    # forced promotion needs a reason
    with pytest.raises(R.RegistryError, match="reason"):
        R.promote(v2, force=True, name=NAME)

    # better challenger: promoted
    v3 = R.register(bundle, metrics=_metrics(22.0, 16.0, 0.85), name=NAME)
    d3 = R.promote(v3, name=NAME)
    assert d3.passed, d3.reasons
    assert c.get_model_version_by_alias(NAME, "champion").version == v3
    assert R.champion_history(NAME) == [v1, v3]

    # rollback restores the previous champion
    assert R.rollback(NAME, reason="test") == v1
    assert c.get_model_version_by_alias(NAME, "champion").version == v1
    assert c.get_model_version(NAME, v3).tags["rolled_back"] == "true"
    with pytest.raises(R.RegistryError, match="no previous champion"):
        R.rollback(NAME)

    # forced with reason: recorded
    d4 = R.promote(v2, force=True, reason="hotfix for a data bug", name=NAME)
    assert not d4.passed
    mv2 = c.get_model_version(NAME, v2)
    assert c.get_model_version_by_alias(NAME, "champion").version == v2
    assert mv2.tags["promotion.forced"] == "true" and mv2.tags["promotion.reason"] == "hotfix for a data bug"

    # gate decisions are runs in the uniss-gate experiment
    exp = c.get_experiment_by_name(R.GATE_EXPERIMENT)
    runs = c.search_runs([exp.experiment_id], filter_string=f"attributes.start_time >= {t0_ms}", max_results=1000)
    actions = [r.data.tags.get("uniss.action") for r in runs]
    assert actions.count("promote") >= 4 and "rollback" in actions
    refused = [r for r in runs if r.data.tags.get("version") == v2 and r.data.tags.get("promoted") == "False"]
    assert refused and refused[0].data.metrics["gate_passed"] == 0.0

    # resolve a registry URI to the bundle directory
    path = R.resolve_model_uri(f"models:/{NAME}@champion", dst=tmp_path_factory.mktemp("dl") / "v")
    assert json.loads((path / "bundle.json").read_text())["data_version"] == "data-a"
    assert (path / "model").is_dir() and (path / "tokenizer").is_dir()
    with pytest.raises(R.RegistryError):
        R.resolve_model_uri(f"models:/{NAME}@nope")


@pytest.mark.slow
def test_pyfunc_champion_translates_audio(registry, tmp_path_factory):
    """``mlflow.pyfunc.load_model("models:/uniss-s2st@champion")`` loads the bundle through
    ``TranslationEngine.load`` and translates base64 audio (random weights: checks the plumbing)."""
    import base64
    import io
    import subprocess

    import mlflow
    import pandas as pd
    import soundfile as sf

    from uniss.codecs.lite import LiteCodecConfig, fit_lite_codec

    R = registry
    d = tmp_path_factory.mktemp("pyfunc")
    wavs = []
    for i, text in enumerate(["hello world", "the cat sat on the mat", "please open the window", "good morning"]):
        subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(d / f"{i}.wav")], check=True, timeout=60)
        wavs.append(sf.read(d / f"{i}.wav", dtype="float32")[0])
    codec = fit_lite_codec(wavs, LiteCodecConfig.tiny(train_steps=20, max_train_s=3.0), progress=False)
    codec.save(d / "codec")
    bundle = _tiny_bundle(d, "p", codec_dir=d / "codec")
    name = _fresh_name("uniss-s2st-pyfunc")
    v = R.register(bundle, metrics=_metrics(50.0, 50.0, 1.0), name=name)
    R.promote(v, force=True, reason="pyfunc plumbing test", name=name)

    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    buf = io.BytesIO()
    sf.write(buf, wavs[0], 16000, format="WAV")
    out = model.predict(pd.DataFrame({"audio_b64": [base64.b64encode(buf.getvalue()).decode()],
                                      "target_language": ["zh"], "mode": ["performance"], "seed": [0]}))
    assert list(out.columns[:3]) == ["source_text", "target_text", "audio_b64"]
    assert len(out) == 1 and out["source_duration_s"][0] == pytest.approx(len(wavs[0]) / 16000, abs=0.01)
    from registry.pyfunc import PredictRequestError

    with pytest.raises(PredictRequestError):
        model.predict(pd.DataFrame({"audio_b64": ["%%%"], "target_language": ["zh"]}))


def test_cli_promote_refuses_then_promotes_then_rolls_back(registry, tmp_path_factory):
    """The acceptance path through the ``uniss`` CLI: a worse challenger is refused with reasons
    (exit 1), a better one is promoted, ``uniss rollback`` restores the previous champion."""
    from mlflow import MlflowClient
    from typer.testing import CliRunner

    from pipelines.cli import app

    R = registry
    c = MlflowClient()
    bundle = _tiny_bundle(tmp_path_factory.mktemp("cli"), "c")
    # the CLI works on uniss-s2st: give it a champion of known metrics whatever ran before
    base = _metrics(10.0, 10.0, 0.8)
    before = R.register(bundle, metrics=base)
    R.promote(before, force=True, reason="cli test baseline")
    assert c.get_model_version_by_alias(NAME, "champion").version == before
    worse = R.register(bundle, metrics={k: (v - 5 if k.startswith("speech_bleu") else v) for k, v in base.items()})
    better = R.register(bundle, metrics={k: (v + 3 if k.startswith("speech_bleu") else v) for k, v in base.items()})
    runner = CliRunner()

    res = runner.invoke(app, ["promote", worse])
    assert res.exit_code == 1, res.output
    assert "refused" in res.output and "regressed by 5" in res.output
    assert R.alias_version("champion") == before

    res = runner.invoke(app, ["promote", worse, "--force"])
    assert res.exit_code == 2 and "reason" in res.output  # typed error, one line

    res = runner.invoke(app, ["promote", better])
    assert res.exit_code == 0, res.output
    assert "promoted" in res.output and R.alias_version("champion") == better

    res = runner.invoke(app, ["rollback", "--reason", "cli test"])
    assert res.exit_code == 0, res.output
    assert R.alias_version("champion") == before

    res = runner.invoke(app, ["promote", "999"])
    assert res.exit_code == 2 and "no version 999" in res.output


def test_compare_table4_from_mlflow_runs(registry):
    """``uniss compare`` reads evaluation runs and prints/logs Table 4 deltas vs the first run
    (paper Table 4 numbers used as the runs' metrics)."""
    import mlflow
    from typer.testing import CliRunner

    from pipelines.cli import app
    from evaluation.common import EVAL_EXPERIMENT
    from evaluation.compare import compare_runs

    mlflow.set_experiment(EVAL_EXPERIMENT)
    ids = []
    for variant, (ez_p, ze_p, ez_d, ze_d) in {"phase 1+2": (29.38, 21.55, 14.44, 7.15), "w/ phase 3": (30.28, 23.61, 0, 0),
                                              "UniST only": (22.20, 11.40, 0, 0)}.items():
        with mlflow.start_run(run_name=variant, tags={"uniss.variant": variant}) as run:
            mlflow.log_metrics({"speech_bleu.en-zh.performance": ez_p, "speech_bleu.zh-en.performance": ze_p,
                                "speech_bleu.en-zh.direct": ez_d, "speech_bleu.zh-en.direct": ze_d})
            ids.append(run.info.run_id)
    df = compare_runs([ids[0], ids[1], ids[2], f"{ids[0]}:direct"])
    assert list(df["variant"]) == ["phase 1+2", "w/ phase 3", "UniST only", "phase 1+2 (Direct S2ST)"]
    assert df["delta.speech_bleu.en-zh"].round(2).tolist() == [0.0, 0.90, -7.18, -14.94]
    assert df["delta.speech_bleu.zh-en"].round(2).tolist() == [0.0, 2.06, -10.15, -14.40]

    res = CliRunner().invoke(app, ["compare", ids[0], ids[1], f"{ids[0]}:direct"])
    assert res.exit_code == 0, res.output
    assert "+0.90" in res.output and "-14.94" in res.output and "logged comparison run" in res.output
    res = CliRunner().invoke(app, ["compare", "0" * 32])
    assert res.exit_code == 2 and "unknown run" in res.output


def test_compare_tests_deltas_on_the_utterances_runs_logged(registry, tmp_path):
    """With per-utterance outputs logged the way ``evaluation.report.log_report`` logs them
    (``eval/utterances.parquet``, in the stack's S3 artifact store), ``uniss compare`` prints the
    paired-bootstrap p-value of each delta; a run without them gets ``n/a``."""
    import mlflow
    import pandas as pd
    from typer.testing import CliRunner

    from evaluation.common import EVAL_EXPERIMENT
    from evaluation.compare import compare_runs
    from pipelines.cli import app

    refs = ["the cat sat on the mat", "a dog ran home", "hello world out there", "it is raining today"] * 5
    outputs = {"good": ["the cat sat on mat", "a dog ran", "hello world", "it rains today"] * 5,
               "bad": ["cat", "dog", "hello", "rain"] * 5, "none": None}
    mlflow.set_experiment(EVAL_EXPERIMENT)
    ids = []
    for name, hyps in outputs.items():
        with mlflow.start_run(run_name=name, tags={"uniss.variant": name}) as run:
            mlflow.log_metrics({"speech_bleu.en-zh.performance": 1.0, "speech_bleu.zh-en.performance": 1.0})
            if hyps is not None:
                f = tmp_path / name / "utterances.parquet"
                f.parent.mkdir()
                pd.DataFrame({"id": [f"u{i:02d}" for i in range(len(refs))], "direction": "zh-en", "mode": "performance",
                              "ref_text": refs, "output_asr": hyps, "output_text": ""}).to_parquet(f)
                mlflow.log_artifact(str(f), artifact_path="eval")
            ids.append(run.info.run_id)
    df = compare_runs(ids, significance=True)
    assert df["p.speech_bleu.zh-en"].iloc[1] < 0.01  # a clear loss on 20 utterances
    assert df["p.speech_bleu.zh-en"].iloc[2] != df["p.speech_bleu.zh-en"].iloc[2]  # no utterances logged: NaN
    assert df["p.speech_bleu.en-zh"].isna().all()  # no en-zh utterances in any run
    res = CliRunner().invoke(app, ["compare", *ids, "--no-log"])
    assert res.exit_code == 0, res.output
    assert "p ZH-EN" in res.output and "n/a" in res.output
