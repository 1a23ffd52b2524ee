"""InferenceService manifests (kserve SDK) and the `uniss serve --emit-manifest` / `translate` CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipelines.cli import app
from serving.manifests import ManifestError, ServiceSpec, build_inference_service, to_yaml

REPO = Path(__file__).resolve().parents[3]


def test_gpu_canary_manifest_fields():
    doc = yaml.safe_load(to_yaml(build_inference_service(ServiceSpec(canary_traffic_percent=20, storage_uri="s3://mlflow/m/3"))))
    assert doc["apiVersion"] == "serving.kserve.io/v1beta1" and doc["kind"] == "InferenceService"
    pred = doc["spec"]["predictor"]
    assert pred["canaryTrafficPercent"] == 20
    assert pred["serviceAccountName"] == "uniss-s3"
    assert pred["nodeSelector"]["uniss.io/pool"] == "gpu-serving"
    assert pred["tolerations"][0]["key"] == "nvidia.com/gpu"
    c = pred["containers"][0]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert c["command"] == ["uniss", "serve"] and "0.0.0.0" in c["args"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["STORAGE_URI"] == "s3://mlflow/m/3" and env["UNISS_SERVE_DEVICE"] == "cuda"


def test_cpu_manifest_has_no_gpu_scheduling():
    pred = yaml.safe_load(to_yaml(build_inference_service(ServiceSpec(gpus=0))))["spec"]["predictor"]
    assert "nodeSelector" not in pred and "tolerations" not in pred and "canaryTrafficPercent" not in pred
    assert "nvidia.com/gpu" not in pred["containers"][0]["resources"]["limits"]


@pytest.mark.parametrize("kw", [dict(storage_uri="/local/path"), dict(min_replicas=5, max_replicas=2)])
def test_bad_specs(kw):
    with pytest.raises(ManifestError):
        build_inference_service(ServiceSpec(**kw))


def test_bad_canary_percent_is_rejected():
    with pytest.raises(ValueError):
        ServiceSpec(canary_traffic_percent=150)


def test_committed_example_matches_the_generator():
    committed = (REPO / "infra/k8s/serving/inferenceservice.yaml").read_text()
    assert committed == to_yaml(build_inference_service(ServiceSpec()))


def test_cli_emit_manifest_and_translate_errors(tmp_path):
    r = CliRunner().invoke(app, ["serve", "--emit-manifest", "--canary-percent", "10"])
    assert r.exit_code == 0, r.output
    assert yaml.safe_load(r.output)["spec"]["predictor"]["canaryTrafficPercent"] == 10
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    r = CliRunner().invoke(app, ["translate", str(bad), "--to", "zh", "-o", str(tmp_path / "o.wav"), "--model", str(tmp_path)])
    assert r.exit_code == 2 and "bad.wav" in r.output and "audio" in r.output and "Traceback" not in r.output


def test_vllm_runtime_manifest_selects_the_gpu_runtime():
    c = yaml.safe_load(to_yaml(build_inference_service(ServiceSpec(runtime="vllm"))))["spec"]["predictor"]["containers"][0]
    assert c["args"][-2:] == ["--runtime", "vllm"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {e["name"]: e["value"] for e in c["env"]}["UNISS_SERVE_DEVICE"] == "cuda"
    assert "--runtime" not in yaml.safe_load(to_yaml(build_inference_service(ServiceSpec())))["spec"]["predictor"]["containers"][0]["args"]
    with pytest.raises(ManifestError, match="GPU"):
        build_inference_service(ServiceSpec(runtime="vllm", gpus=0))


def test_cli_emit_manifest_runtime():
    r = CliRunner().invoke(app, ["serve", "--emit-manifest", "--runtime", "vllm"])
    assert r.exit_code == 0, r.output
    assert yaml.safe_load(r.output)["spec"]["predictor"]["containers"][0]["args"][-1] == "vllm"
    r = CliRunner().invoke(app, ["serve", "--emit-manifest", "--runtime", "vllm", "--gpus", "0"])
    assert r.exit_code == 2 and "GPU" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["serve", "--emit-manifest", "--runtime", "fast"])
    assert r.exit_code == 2 and "--runtime" in r.output
