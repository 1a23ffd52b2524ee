"""Local deploy serves (issue 17 item 4), on the real embedded stack (``stack`` fixture: SeaweedFS
S3 + MLflow + the model server, 127.0.0.1): two tiny bundles (2-layer Qwen2, a lite codec fitted
for a few steps on flite clips) are registered; after each promotion the pipeline's deploy step
(``serving.manifests.deploy_step``) makes the stack's model server serve the new champion with no
manual step, while a client keeps sending requests through the reload: every one succeeds, each
answered by the old or the new version (``x-uniss-model-version``), never out of order.
``infra.local.stack.status`` then names the version served."""

from __future__ import annotations

import base64
import io
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
import soundfile as sf

from uniss.settings import MODEL_NAME

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TEXTS = ["hello world", "the cat sat on the mat", "please open the window", "good morning to you all"]


def _bundle(out: Path, tag: str, seed: int, codec_dir: Path) -> Path:
    """A real (untrained) bundle: BPE text tokenizer + speech tokens of ``codec_dir``'s sizes, a
    2-layer Qwen2 (``seed``), bundle.json."""
    import torch

    from uniss.bundle import save_bundle
    from uniss.codecs import load_codec
    from uniss.lm import build_speech_tokenizer, train_text_tokenizer, uniss_lm, vocab_for

    text_tok = train_text_tokenizer(TEXTS * 4 + ["我们的国家很大", "你好世界"] * 4, vocab_size=300, min_frequency=1)
    vocab = vocab_for(text_tok, dict(load_codec(codec_dir).sizes))
    torch.manual_seed(seed)
    model = uniss_lm("tiny", vocab.total, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2)
    meta = {"phase": 3, "size": "tiny", "data_version": f"data-{tag}", "shard_md5s": [f"md5-{tag}"],
            "codec_fingerprint": "sha256:test", "git_commit": "abc123"}
    return save_bundle(out / f"bundle-{tag}", model=model, tokenizer=build_speech_tokenizer(text_tok, vocab), vocab=vocab,
                       meta=meta, codec_dir=codec_dir)


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """(two bundle dirs, a request body): flite clips, a lite codec fitted 20 steps on them."""
    from uniss.codecs.lite import LiteCodecConfig, fit_lite_codec

    d = tmp_path_factory.mktemp("deploy")
    wavs = []
    for i, text in enumerate(TEXTS):
        subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(d / f"{i}.wav")], check=True, timeout=60)
        wavs.append(sf.read(d / f"{i}.wav", dtype="float32")[0])
    codec = fit_lite_codec(wavs, LiteCodecConfig.tiny(train_steps=20, max_train_s=3.0), progress=False)
    codec.save(d / "codec")
    buf = io.BytesIO()
    sf.write(buf, wavs[1], 16000, format="WAV")
    body = {"instances": [{"audio_b64": base64.b64encode(buf.getvalue()).decode(), "target_language": "zh",
                           "mode": "performance", "seed": 0}]}
    return _bundle(d, "one", 1, d / "codec"), _bundle(d, "two", 2, d / "codec"), body


def _promote(bundle: Path, why: str) -> str:
    from registry import models as R

    v = R.register(bundle, metrics={}, name=MODEL_NAME)
    R.promote(v, force=True, reason=why, name=MODEL_NAME)
    return v


def _ask(url: str, body: dict) -> tuple[int, str | None, float, float]:
    t0 = time.monotonic()
    r = httpx.post(f"{url}/v1/models/{MODEL_NAME}:predict", json=body, timeout=120)
    return r.status_code, r.headers.get("x-uniss-model-version"), t0, time.monotonic()


def test_deploy_step_makes_the_stack_serve_each_new_champion(stack, assets, tmp_path):
    from infra.local import stack as stack_mod
    from serving.manifests import deploy_step

    b1, b2, body = assets
    url = stack.model_server_url
    assert stack_mod.status(stack).services["serve"].healthy  # live (no champion yet, or an earlier test's)

    v1 = _promote(b1, "local deploy test: first")
    info = deploy_step(version=v1, canary_percent=0, manifest_path=str(tmp_path / "isvc1.yaml"))
    assert info["applied"] is False and info["local_server"]["reloaded"] is True, info
    assert info["local_server"]["served_version"] == v1 and info["local_server"]["matches"] is True
    code, version, *_ = _ask(url, body)
    assert (code, version) == (200, v1)

    v2 = _promote(b2, "local deploy test: second")
    answers: list[tuple[int, str | None, float, float]] = []
    stop = threading.Event()

    def client() -> None:  # one request after another, through the reload
        while not stop.is_set():
            answers.append(_ask(url, body))

    th = threading.Thread(target=client)
    th.start()
    while not answers:  # the client is going
        time.sleep(0.1)
    t_deploy = time.monotonic()
    info = deploy_step(version=v2, canary_percent=0, manifest_path=str(tmp_path / "isvc2.yaml"))
    t_done = time.monotonic()
    code, version, *_ = _ask(url, body)  # no manual step: the next request gets the new champion
    stop.set()
    th.join(timeout=180)
    assert info["local_server"]["served_version"] == v2, info
    assert (code, version) == (200, v2)

    assert all(a[0] == 200 for a in answers), [a[:2] for a in answers]
    versions = [a[1] for a in answers]
    assert set(versions) <= {v1, v2} and versions == sorted(versions, key=lambda v: v == v2)  # old ones, then new ones
    during = [a for a in answers if a[2] < t_done and a[3] > t_deploy]
    assert during and all(a[0] == 200 for a in during)  # requests in flight while the new version loaded

    svc = stack_mod.status(stack).services["serve"]
    assert svc.healthy and svc.model_version == v2 and f"version {v2}" in svc.detail
    metrics = httpx.get(f"{url}/metrics", timeout=10).text
    assert f'uniss_model_info{{model_name="{MODEL_NAME}",model_version="{v2}"' in metrics
    assert f'uniss_model_info{{model_name="{MODEL_NAME}",model_version="{v1}"' not in metrics
