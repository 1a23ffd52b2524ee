"""End-to-end on your own data (issue 19 item 1): a small corpus of real recordings on this machine
(Asterisk prompts + LibriVox clips, English; gcin-voice Mandarin syllable sentences; reference
translations, ``uniss.unist.real.write_real_corpus``) written as a CSV manifest and as a
LibriSpeech-layout folder, then

- ``uniss data build --source librispeech:DIR`` builds, gates and versions it (DVC tag on S3);
- ``uniss retrain --source manifest:FILE`` (its pipeline arguments, run with kfp.local on the real
  embedded stack) runs every step on it, speaker-disjoint test split included.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pipelines.runner import retrain_arguments, run_local

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from uniss.unist.real import write_real_corpus

    root = tmp_path_factory.mktemp("real")
    return {"manifest": write_real_corpus(root / "csv", "csv"), "librispeech": write_real_corpus(root / "ls", "librispeech")}


def test_data_build_librispeech_source_is_gated_and_versioned(stack, corpus, tmp_path):
    from pipelines.cli import app
    from registry.data import DataRegistry
    from uniss.unist.dataset import load_samples

    out = tmp_path / "data"
    r = CliRunner().invoke(app, ["data", "build", "--source", f"librispeech:{corpus['librispeech']}", "--out", str(out),
                                 "--json"])
    assert r.exit_code == 0, r.output
    summary, _ = json.JSONDecoder().raw_decode(r.stdout[r.stdout.index("{\n"):])
    assert summary["validation"]["passed"] and summary["version"].startswith("v")
    assert summary["version"] in DataRegistry().tags()
    df = load_samples(out, split="all")
    assert set(df["src_lang"]) == {"en"} and set(df["origin"]) == {"librispeech"}
    train, test = set(df.loc[df["split"] == "train", "speaker"]), set(df.loc[df["split"] == "test", "speaker"])
    assert train and test and not train & test, (train, test)


def test_retrain_on_real_manifest_runs_end_to_end(stack, corpus):
    spec = {"sources": [f"manifest:{corpus['manifest']}"], "directions": ["en-zh", "zh-en"], "split": "speaker",
            "limit": 0, "test_share": 0.2, "dev_share": 0.1}
    args = retrain_arguments("tiny", sources=spec)
    assert args["sources"] == spec and args["eval_directions"] == ["en-zh", "zh-en"]
    res = run_local("retrain", args, settings=stack)
    steps = [s["step"] for s in res.steps]
    for step in ("build_source", "synthesize_unist", "validate_unist", "version_unist", "phase-1", "phase-2",
                 "phase-3", "evaluate_model", "register_model", "gate_model"):
        assert step in steps, f"{step} did not run: {steps}"
    s = res.summary
    assert s["data_version"].startswith("v") and s["model_version"], s

    from registry.data import DataRegistry
    from uniss.unist.dataset import load_samples

    data = DataRegistry().checkout(s["data_version"], None)
    df = load_samples(data, split="all")
    assert set(df["voice_set"]) == {"real"} and set(df["origin"]) == {"manifest"}
    for lang in ("en", "zh"):
        sub = df[df["src_lang"] == lang]
        train, test = set(sub.loc[sub["split"] == "train", "speaker"]), set(sub.loc[sub["split"] == "test", "speaker"])
        assert train and test and not train & test, (lang, train, test)
    print(f"real-corpus retrain: {len(df)} samples ({s['data_version']}), wall {res.wall_s:.0f} s")
