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
