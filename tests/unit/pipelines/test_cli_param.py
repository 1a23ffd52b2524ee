"""``uniss pipeline submit --param key=VALUE``: valid items become pipeline arguments (JSON-typed,
bare strings kept); malformed ones exit 2 with a clear ``--param`` message before anything is submitted."""

import pytest
import typer
from typer.testing import CliRunner

import pipelines.cli.pipeline as cli_pipeline
from pipelines.cli import app
from pipelines.cli.pipeline import parse_param

runner = CliRunner()


@pytest.fixture
def submitted(monkeypatch):
    """Replace the KFP submission with a recorder (no kfp, no network)."""
    calls = []

    def fake_submit(pipeline, host, arguments, **kw):
        calls.append({"pipeline": pipeline, "host": host, "arguments": arguments, **kw})
        return "run-123"

    monkeypatch.setattr(cli_pipeline, "submit", fake_submit)
    return calls


def _submit(*params, pipeline="ablation"):
    args = ["pipeline", "submit", "--host", "http://kfp.invalid", "--pipeline", pipeline]
    for p in params:
        args += ["--param", p]
    return runner.invoke(app, args, env={"COLUMNS": "200"})


def test_valid_params_are_json_typed_and_bare_strings_kept(submitted):
    res = _submit("eval_limit=20", "flag=true", "none=null", "ratio=0.5", 'variants=[{"name": "a"}]',
                  'quoted="x y"', "data_version=v3", "empty=", "expr=a=b", " spaced =1")
    assert res.exit_code == 0, res.output
    assert "submitted KFP run run-123" in res.output
    assert submitted[0]["arguments"] == {
        "eval_limit": 20, "flag": True, "none": None, "ratio": 0.5, "variants": [{"name": "a"}],
        "quoted": "x y", "data_version": "v3", "empty": "", "expr": "a=b", "spaced": 1}


def test_params_override_retrain_preset_and_later_key_wins(submitted):
    res = _submit("eval_limit=7", "seed=1", "seed=2", pipeline="retrain")
    assert res.exit_code == 0, res.output
    args = submitted[0]["arguments"]
    assert args["eval_limit"] == 7 and args["seed"] == 2
    assert args["size"] == "demo"  # the preset's other arguments stay


@pytest.mark.parametrize("item, msg", [
    ("eval_limit", "has no '='"),
    ("=5", "empty key"),
    ("  =5", "empty key"),
    ("eval-limit=5", "not a pipeline parameter name"),
    ('variants=[{"name": "a"}', "malformed JSON"),
    ("cfg={bad}", "malformed JSON"),
    ('s="unterminated', "malformed JSON"),
])
def test_malformed_param_exits_2_with_clear_message_and_submits_nothing(submitted, item, msg):
    res = _submit("seed=1", item)
    assert res.exit_code == 2, res.output
    assert "--param" in res.output and msg in res.output, res.output
    assert "Traceback" not in res.output
    assert submitted == []


def test_parse_param_unit():
    assert parse_param("a=[1, 2]") == ("a", [1, 2])
    assert parse_param("a=hello world") == ("a", "hello world")
    with pytest.raises(typer.BadParameter, match="no '='"):
        parse_param("a")


@pytest.fixture
def ran_locally(monkeypatch):
    """Replace the local pipeline run with a recorder returning two evaluate steps."""
    from pipelines.runner import LocalRunResult

    calls = []

    def fake_run_local(pipeline, arguments, **kw):
        calls.append({"pipeline": pipeline, "arguments": arguments})
        steps = [{"step": "evaluate_model", "wall_s": 1.0, "run_id": rid} for rid in ("run-a", "run-b")]
        return LocalRunResult(parent_run_id=None, tracking_uri=None, wall_s=2.0, steps=steps)

    monkeypatch.setattr(cli_pipeline, "run_local", fake_run_local)
    return calls


def test_ablation_recipes_trains_the_three_recipes_and_prints_one_compare(ran_locally):
    res = runner.invoke(app, ["pipeline", "ablation", "--data-version", "v1", "--variants", "recipes", "-o", "epochs=1"],
                        env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    args = ran_locally[0]["arguments"]
    assert ran_locally[0]["pipeline"] == "ablation" and args["data_version"] == "v1" and args["eval_modes"] == ["quality"]
    assert [(v["name"], v["recipe"], v["phases"], v["overrides"]) for v in args["variants"]] == [
        ("uniss", "uniss", [1, 2, 3], ["epochs=1"]), ("mslm", "mslm", [1], ["epochs=1"]),
        ("s2st-omni", "s2st-omni", [1, 2], ["epochs=1"])]
    # one compare command with every evaluate run as its own argument
    assert "uniss compare run-a run-b --mode quality --metric speech_bleu,text_bleu,slc_0.2,speaker_sim,mos,rtf" in res.output


def test_ablation_default_is_table4_and_unknown_set_exits_2(ran_locally):
    res = runner.invoke(app, ["pipeline", "ablation", "--data-version", "v1"], env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    assert [v["name"] for v in ran_locally[0]["arguments"]["variants"]] == ["full", "wo_phase1", "wo_linguistic", "phase1_2"]
    assert "eval_modes" not in ran_locally[0]["arguments"]
    assert "uniss compare run-a run-b" in res.output
    res = runner.invoke(app, ["pipeline", "ablation", "--data-version", "v1", "--variants", "cascade"], env={"COLUMNS": "300"})
    assert res.exit_code == 2 and "--variants must be one of" in res.output
