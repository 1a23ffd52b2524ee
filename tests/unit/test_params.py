"""uniss.params: one model for the whole params.yaml; each section rejects unknown keys."""

import pytest
import yaml

from pipelines.runner import PipelineError
from pipelines.runner import load_params as runner_params
from uniss.gate import GateConfigError, load_thresholds
from uniss.params import PARAMS_FILE, ParamsError, ProjectParams, load_project_params
from uniss.unist.errors import UnistError
from uniss.unist.params import load_params as data_params


def test_real_params_yaml_loads():
    p = load_project_params()
    assert isinstance(p, ProjectParams)
    assert p.gate == load_thresholds(PARAMS_FILE) and p.data == data_params()
    assert p.pipeline.tiny.eval_limit == runner_params(PARAMS_FILE)["pipeline"]["tiny"]["eval_limit"]


@pytest.mark.parametrize(("section", "inner"), [("data", None), ("gate", None), ("pipeline", None), ("pipeline", "tiny"), (None, None)])
def test_unknown_key_rejected(tmp_path, section, inner):
    d = yaml.safe_load(PARAMS_FILE.read_text())
    target = d if section is None else d[section] if inner is None else d[section][inner]
    target["no_such_key"] = 1
    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump(d))
    with pytest.raises(ParamsError, match="no_such_key"):
        load_project_params(f)
    with pytest.raises(GateConfigError):
        load_thresholds(f)
    with pytest.raises(UnistError):
        data_params(f)
    with pytest.raises(PipelineError):
        runner_params(f)


def test_pipeline_codec_is_the_size_preset_else_the_size(tmp_path):
    """``pipeline.<size>.codec`` picks the lite codec preset; unset, the size's own name (v2); an unknown
    size is a ParamsError, not a silent default."""
    from uniss.params import PipelineParams, pipeline_codec

    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump({"pipeline": {"demo": {"codec": "demo-v3"}}}))
    assert [pipeline_codec(s, f) for s in ("tiny", "demo")] == ["tiny", "demo-v3"]
    assert [pipeline_codec(s) for s in ("tiny", "demo")] == ["tiny-v3", "demo-v3-hifigan"]  # the shipped params.yaml
    with pytest.raises(ParamsError, match="unknown size"):
        PipelineParams().codec_for("large")


@pytest.mark.parametrize("argv, size", [(["data", "build", "--size", "demo", "--no-register"], "demo"),
                                        (["data", "tokenize", "SYNTH", "--out", "TOK"], "tiny")])
def test_data_cli_fits_the_pipeline_codec(tmp_path, monkeypatch, argv, size):
    """``uniss data build`` and ``uniss data tokenize`` fit the codec preset the retraining pipeline fits
    (``params.yaml`` ``pipeline.<size>.codec``, here from ``--params``), and ``--codec-preset`` /
    ``--preset`` override it."""
    from typer.testing import CliRunner

    import uniss.unist.steps as steps
    from pipelines.cli import app

    seen: list[str] = []

    def fake_build(size, out, **kw):  # stands in for the whole build; records the preset it was given
        seen.append(kw["codec_preset"])
        raise UnistError("stop after the preset")

    def fake_fit(data_dir, out, preset="tiny", **kw):
        seen.append(preset)
        raise UnistError("stop after the preset")

    monkeypatch.setattr(steps, "build", fake_build)
    monkeypatch.setattr(steps, "fit_codec", fake_fit)
    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump({"pipeline": {size: {"codec": f"{size}-v3"}}}))
    argv = [a.replace("SYNTH", str(tmp_path / "s")).replace("TOK", str(tmp_path / "t")) for a in argv]
    flag = "--codec-preset" if argv[1] == "build" else "--preset"
    for extra, want in (([], f"{size}-v3"), ([flag, size], size)):
        res = CliRunner().invoke(app, [*argv, "--params", str(f), *extra])
        assert res.exit_code == 2, res.output
        assert "stop after the preset" in res.output
        assert seen.pop() == want
