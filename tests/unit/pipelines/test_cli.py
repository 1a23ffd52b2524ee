"""The ``uniss`` CLI: every group registered; typed errors become one line and exit code 2."""

import json

from typer.testing import CliRunner

from pipelines.cli import app

runner = CliRunner()

GROUPS = ["stack", "vocab", "prompt", "codec", "data", "train", "evaluate", "promote", "serve", "translate", "pipeline", "retrain"]


def test_help_lists_every_group():
    res = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    missing = [g for g in GROUPS if f" {g} " not in res.output]
    assert not missing, f"groups missing from `uniss --help`: {missing}"


def test_vocab_paper_json_total():
    res = runner.invoke(app, ["vocab", "--layout", "paper", "--json"])
    assert res.exit_code == 0
    assert json.loads(res.output)["total"] == 180_407


def test_prompt_prints_released_prompt():
    spk = ",".join(str(i) for i in range(32))
    res = runner.invoke(app, ["prompt", "--task", "direct", "--tgt", "zh", "--speaker", spk, "--linguistic", "5,6,7"])
    assert res.exit_code == 0
    assert res.output.startswith("<|task_s2s_translation|><|fast_mode|><|cmn|><|start_global_token|><|bicodec_global_0|>")
    assert res.output.strip().endswith("<|glm_semantic_7|><|write_generate|><|fast_mode|><|cmn|><|speed_9|><|start_semantic_token|>")


def test_prompt_bad_input_is_one_clear_line():
    spk = ",".join(str(i) for i in range(32))
    cases = [
        (["--task", "quality", "--tgt", "zh", "--speaker", "1,2,3", "--linguistic", "5"], "32 codes"),
        (["--task", "quality", "--tgt", "fr", "--speaker", spk, "--linguistic", "5"], "unknown language 'fr'"),
        (["--task", "asr", "--src", "en", "--speaker", spk, "--linguistic", "99999"], "linguistic code outside"),
    ]
    for args, msg in cases:
        res = runner.invoke(app, ["prompt", *args])
        assert res.exit_code == 2, res.output
        assert msg in res.output and "Traceback" not in res.output


def test_retrain_rejects_unknown_size_before_any_work():
    res = runner.invoke(app, ["retrain", "--size", "huge"])
    assert res.exit_code == 2
    assert "unknown size 'huge'" in res.output


WIDE = {"COLUMNS": "300"}  # rich wraps error panels at the terminal width


def test_recipe_options_are_checked_before_any_work(tmp_path):
    """``--recipe`` of ``uniss train``/``uniss retrain`` (issue 20): unknown names, a config of the other
    recipe and a UniSS phase without ``--phase``/``--config`` stop with exit code 2 before any work."""
    res = runner.invoke(app, env=WIDE, args=["retrain", "--recipe", "nope"])
    assert res.exit_code == 2 and "--recipe must be one of uniss, mslm" in res.output
    base = ["train", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o")]
    res = runner.invoke(app, env=WIDE, args=[*base, "--recipe", "mslm", "--config", "tiny_phase1.yaml"])
    assert res.exit_code == 2 and "trains recipe 'uniss', not --recipe 'mslm'" in res.output
    res = runner.invoke(app, env=WIDE, args=[*base, "--config", "tiny_mslm.yaml", "--phase", "1"])
    assert res.exit_code == 2 and "trains recipe 'mslm', not --recipe 'uniss'" in res.output
    res = runner.invoke(app, env=WIDE, args=[*base, "--config", "tiny_phase1.yaml"])
    assert res.exit_code == 2 and "--phase is required" in res.output
    # mslm defaults to phase 1 of tiny_mslm.yaml and reaches the data check (no dataset here)
    res = runner.invoke(app, env=WIDE, args=[*base, "--recipe", "mslm"])
    assert res.exit_code == 2 and "is not a UniST dataset" in res.output and "Traceback" not in res.output


def test_omni_recipe_defaults_and_checks(tmp_path):
    """``--recipe s2st-omni`` (issue 20): stage 1 of tiny_omni_stage1.yaml by default, ``--phase 2`` picks
    stage 2's config; a config of another recipe stops with exit code 2 before any work."""
    base = ["train", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o")]
    res = runner.invoke(app, env=WIDE, args=[*base, "--recipe", "s2st-omni", "--config", "tiny_mslm.yaml"])
    assert res.exit_code == 2 and "trains recipe 'mslm', not --recipe 's2st-omni'" in res.output
    res = runner.invoke(app, env=WIDE, args=[*base, "--config", "tiny_omni_stage1.yaml", "--phase", "1"])
    assert res.exit_code == 2 and "trains recipe 's2st-omni', not --recipe 'uniss'" in res.output
    res = runner.invoke(app, env=WIDE, args=[*base, "--recipe", "s2st-omni"])
    assert res.exit_code == 2 and "is not a UniST dataset" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, env=WIDE, args=[*base, "--recipe", "s2st-omni", "--phase", "2"])  # stage 2 needs stage 1's bundle
    assert res.exit_code == 2 and "--init BUNDLE" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, env=WIDE, args=[*base, "--recipe", "s2st-omni", "--phase", "3"])
    assert res.exit_code == 2 and "tiny_omni_stage3" in res.output
