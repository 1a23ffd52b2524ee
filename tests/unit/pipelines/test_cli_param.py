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
