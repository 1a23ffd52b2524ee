"""UniST data versioning against the real embedded stack (SeaweedFS S3 + DVC): build v1, change a
parameter, build v2, delete the local DVC cache, roll back to v1 -> shard md5s identical to v1's
manifest; an unchanged rebuild is a step-cache hit (no synthesis work) and no new version.

The speech engines here are the deterministic test engines of ``tests/unit/unist/conftest.py``
(the storage/versioning path is what is under test; the real TTS/Whisper engines are exercised by
``uniss data build``, whose figures are in the issue note).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from registry.data import DataRegistry
from registry.storage import minio_client
from tests.unit.unist.conftest import EarASR, LookupMT, RateCodec, ToneTTS, clean, error_rate, vad_trim, voice_map
from uniss.unist import lexicon, steps
from uniss.unist.cache import StepCache
from uniss.unist.dataset import load_samples, read_manifest
from uniss.unist.io import file_md5
from uniss.unist.params import DataParams
from uniss.unist.synthesize import Engines

UNISS = [str(Path(sys.executable).parent / "uniss")]  # the console script of this venv


def _engines(params: DataParams) -> Engines:
    asr = EarASR()
    preset = params.size("tiny")
    pairs = lexicon.generate_pairs({"train": 2 * preset.train, "dev": 2 * preset.dev, "test": 2 * preset.test},
                                   seed=params.seed)
    table = {p.en: p.zh for p in pairs} | {p.zh: p.en for p in pairs}
    return Engines(asr=asr, tts=ToneTTS(asr), mt=LookupMT(table), error_rate=error_rate, clean_translation=clean,
                   voice_map=voice_map, vad_trim=vad_trim)


@pytest.mark.integration
@pytest.mark.slow
def test_build_push_rollback_byte_for_byte(stack, tmp_path: Path):
    p1 = DataParams(rows_per_shard=16, chunk_rows=8)
    cache = StepCache(tmp_path / "cache")
    reg = DataRegistry()
    assert reg.root.is_relative_to(stack.home_dir)
    # The session's stack (and so its data registry) is shared with other tests, e.g. the e2e
    # pipeline, which may already have tagged versions: expect the next two tags after them.
    before = reg.tags()
    v1, v2 = f"v{len(before) + 1}", f"v{len(before) + 2}"

    def build(params: DataParams, out: Path) -> dict:
        eng = _engines(params)
        return steps.build("tiny", out, params=params, engines=eng, cache=cache, codec=RateCodec(),
                           work_dir=tmp_path / "work", registry=reg)

    # v1
    t0 = time.perf_counter()
    s1 = build(p1, tmp_path / "d1")
    cold_s = time.perf_counter() - t0
    assert s1["version"] == v1 and s1["validation"]["passed"]
    m1 = read_manifest(tmp_path / "d1")
    v1_md5 = {s["path"]: s["md5"] for s in m1["shards"]}
    assert len(v1_md5) >= 2
    counts = m1["counts"]["subsets"]
    assert counts["total/general"] > 0 and {"train/general/en-zh", "train/general/zh-en"} <= set(counts)
    # credentials never land in the committed DVC config
    key, secret = stack.s3_credentials()
    committed = (reg.root / ".dvc" / "config").read_text()
    assert secret not in committed and key not in committed and "s3://" in committed
    assert secret not in (reg.root / ".dvc" / "config.local").read_text()
    # the objects are in the S3 bucket
    objs = list(minio_client(stack).list_objects(stack.data_bucket, prefix="dvc/", recursive=True))
    assert len(objs) >= len(v1_md5)

    # unchanged rebuild: every step is a cache hit, same bytes, no new version
    hits_before = dict(cache.stats.misses)
    t0 = time.perf_counter()
    s1b = build(p1, tmp_path / "d1b")
    warm_s = time.perf_counter() - t0
    assert cache.stats.misses == hits_before  # no new miss: no TTS / ASR / VAD / tokenizer work
    assert s1b["version"] == v1
    assert {s["path"]: s["md5"] for s in read_manifest(tmp_path / "d1b")["shards"]} == v1_md5
    print(f"\nunist build tiny (test engines): cold {cold_s:.1f} s, unchanged rebuild {warm_s:.1f} s, "
          f"ratio {warm_s / cold_s:.3f}; timings cold={s1['timings']} warm={s1b['timings']}")

    # v2: a different HQ window changes the hq flags -> different shard bytes
    p2 = p1.model_copy(update={"hq_ratio": (0.8, 1.3)})
    s2 = build(p2, tmp_path / "d2")
    assert s2["version"] == v2
    v2_md5 = {s["path"]: s["md5"] for s in read_manifest(tmp_path / "d2")["shards"]}
    assert v2_md5 != v1_md5
    assert [v["version"] for v in reg.log()] == [*before, v1, v2]
    assert reg.log()[len(before)]["shards"] == v1_md5

    # delete the local DVC cache and the workspace copy; roll back v1 through the CLI (a subprocess:
    # the stack fixture's UNISS_* / AWS_* variables are in this process's environment)
    shutil.rmtree(reg.cache_dir())
    shutil.rmtree(reg.root / "unist")

    def uniss(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*UNISS, *args], capture_output=True, text=True, timeout=300)

    r = uniss("data", "rollback", v1, "--out", str(tmp_path / "restored"))
    assert r.returncode == 0, r.stdout + r.stderr
    restored = tmp_path / "restored"
    assert {s["path"]: file_md5(restored / s["path"]) for s in m1["shards"]} == v1_md5
    assert read_manifest(restored)["shards"] == m1["shards"]
    assert len(load_samples(restored, split="all")) == s1["rows"]

    r = uniss("data", "log", "--json")
    assert r.returncode == 0 and [v["version"] for v in json.loads(r.stdout)] == [*before, v1, v2], r.stderr
    missing = f"v{len(before) + 9}"
    r = uniss("data", "rollback", missing)
    assert r.returncode == 2 and f"unknown data version '{missing}'" in r.stdout + r.stderr, r.stdout + r.stderr
