"""Golden compile tests of the KFP pipelines (STYLE.md #4): the compiled IR, SDK version stripped,
must equal the committed YAML in tests/testdata/. Regenerate deliberately with
``UNISS_UPDATE_GOLDEN=1 pytest tests/unit/pipelines/test_compile.py``."""

import os
import re
from pathlib import Path

import pytest
import yaml

from pipelines.runner import compile_pipeline

TESTDATA = Path(__file__).resolve().parents[2] / "testdata"


def _normalise(text: str) -> str:
    # The SDK version changes with upgrades; the leading comment header renders dict defaults in
    # protobuf Struct order, which is not stable between runs: both are left out of the comparison.
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    return re.sub(r"sdkVersion: kfp-[0-9.]+", "sdkVersion: kfp", body) + "\n"


@pytest.mark.parametrize("name", ["retrain", "ablation"])
def test_pipeline_compiles_to_golden_yaml(name, tmp_path):
    """``compile_pipeline`` (what ``uniss pipeline compile`` runs; ``retrain`` is compiled for the
    cluster target) must give the committed IR, SDK version stripped: any change to a step, its
    wiring or the cluster config (GPU pools, tolerations, accelerator limits, PVC, secret) fails."""
    out = compile_pipeline(name, tmp_path / f"{name}.yaml")
    got = _normalise(out.read_text())
    golden = TESTDATA / f"{name}_pipeline.yaml"
    if os.environ.get("UNISS_UPDATE_GOLDEN") == "1":
        golden.write_text(got)
    assert golden.exists(), f"missing golden file {golden}; run with UNISS_UPDATE_GOLDEN=1"
    assert got == golden.read_text(), f"{name} pipeline changed: review and regenerate the golden YAML"


_SECRET_ENV = [{"envVar": "UNISS_S3_ACCESS_KEY", "secretKey": "access_key"}, {"envVar": "UNISS_S3_SECRET_KEY", "secretKey": "secret_key"}]
_GPU_EXECUTORS = {"exec-evaluate-model"}
_TRAIN_EXECUTORS = {"exec-train-phase", "exec-train-phase-2", "exec-train-phase-3"}


@pytest.fixture(scope="module")
def cluster_spec(tmp_path_factory):
    """The retrain pipeline freshly compiled for the cluster target: (IR docs, text)."""
    from kfp import compiler

    from pipelines.retrain import make_retrain_pipeline

    path = tmp_path_factory.mktemp("cluster") / "retrain.yaml"
    compiler.Compiler().compile(make_retrain_pipeline("cluster"), str(path))
    text = path.read_text()
    return list(yaml.safe_load_all(text)), text


def test_cluster_variant_equals_golden(cluster_spec):
    """The explicitly cluster-targeted build is the golden retrain YAML (the CLI compiles this one)."""
    assert _normalise(cluster_spec[1]) == (TESTDATA / "retrain_pipeline.yaml").read_text()


def test_retrain_cluster_spec_has_gpu_pools_secrets_and_gate(cluster_spec):
    """The cluster config the deployment expects (literals, not the module's constants): evaluation
    on the H100 pool with the GPU toleration, one GPU, 8 CPUs, 64 GB and the checkpoint PVC; the
    three training steps hold no GPU (their TrainJob does) but the checkpoint PVC the TrainJob's
    nodes share; every step gets the S3 secret; promotion sits behind the gate."""
    spec, text = cluster_spec
    dag = spec[0]["root"]["dag"]["tasks"]
    assert any("condition" in k for k in dag), sorted(dag)
    executors = spec[0]["deploymentSpec"]["executors"]
    platform = spec[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(platform) == set(executors), "every executor needs kubernetes platform config (the S3 secret)"
    for name, ex in executors.items():
        res = ex["container"].get("resources", {})
        plat = platform[name]
        assert plat["secretAsEnv"] == [{"keyToEnv": _SECRET_ENV, "optional": False, "secretName": "uniss-s3",
                                        "secretNameParameter": {"runtimeValue": {"constant": "uniss-s3"}}}], name
        if name in _GPU_EXECUTORS:
            assert res["accelerator"]["resourceType"] == "nvidia.com/gpu" and res["accelerator"]["resourceCount"] == "1", name
            assert res["resourceCpuRequest"] == "8" and res["resourceMemoryRequest"] == "64G", name
            assert plat["nodeSelector"] == {"labels": {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}}, name
            assert plat["tolerations"] == [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}], name
            assert [(m["constant"], m["mountPath"]) for m in plat["pvcMount"]] == [("uniss-checkpoints", "/checkpoints")], name
            env = {e["name"]: e["value"] for e in ex["container"].get("env", [])}
            assert env.get("UNISS_CHECKPOINT_ROOT") == "/checkpoints", name
        elif name in _TRAIN_EXECUTORS:
            assert "accelerator" not in res and not {"nodeSelector", "tolerations"} & set(plat), name
            assert res["resourceCpuRequest"] == "4" and res["resourceMemoryRequest"] == "32G", name
            assert [(m["constant"], m["mountPath"]) for m in plat["pvcMount"]] == [("uniss-checkpoints", "/checkpoints")], name
            env = {e["name"]: e["value"] for e in ex["container"].get("env", [])}
            assert env.get("UNISS_CHECKPOINT_ROOT") == "/checkpoints", name
        else:
            assert "accelerator" not in res and not {"nodeSelector", "tolerations", "pvcMount"} & set(plat), name
    for step in ("build-source", "synthesize-unist", "validate-unist", "version-unist", "gate-model", "register-model",
                 "promote-model", "deploy-model", "record-rejection"):
        assert f"comp-{step}" in text


def test_local_variant_has_no_platform_config_and_carries_code_version(tmp_path):
    from kfp import compiler

    from pipelines.retrain import make_retrain_pipeline

    compiler.Compiler().compile(make_retrain_pipeline("local", {"uniss": "c0ffee", "training": "7ea", "serving": "5e7",
                                                                         "evaluation": "e7a", "registry": "4e9"}), str(tmp_path / "l.yaml"))
    docs = list(yaml.safe_load_all((tmp_path / "l.yaml").read_text()))
    assert len(docs) == 1  # no kubernetes platform spec
    text = (tmp_path / "l.yaml").read_text()
    assert "c0ffee-7ea" in text and "c0ffee-5e7-e7a-4e9" in text  # training/serving steps hash their own trees
    with pytest.raises(ValueError, match="target"):
        make_retrain_pipeline("moon")


def _train_task_inputs(spec: dict) -> list[dict]:
    dag = spec["root"]["dag"]["tasks"]
    return [t["inputs"]["parameters"] for k, t in dag.items() if k.startswith("train-phase")]


def test_cluster_training_runs_as_trainjob_without_nproc_mismatch(cluster_spec):
    """Issue 18: each training step on the cluster creates a TrainJob (engine ``trainjob``) sized by
    the ``nodes`` x ``gpus_per_node`` pipeline parameters, not ``nproc`` ranks in a one-GPU pod;
    the tiny configs default to 1 x 1."""
    spec = cluster_spec[0][0]
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["nodes"]["defaultValue"] == 1 and params["gpus_per_node"]["defaultValue"] == 1
    tasks = _train_task_inputs(spec)
    assert len(tasks) == 3
    for p in tasks:
        assert p["engine"]["runtimeValue"]["constant"] == "trainjob"
        assert p["nodes"]["componentInputParameter"] == "nodes"
        assert p["gpus_per_node"]["componentInputParameter"] == "gpus_per_node"


def test_compile_flags_and_paper_defaults(tmp_path):
    """``uniss pipeline compile --model-size 1_5b`` defaults to the paper's 2 nodes x 8 GPUs (the
    1.5B phase configs' ``cluster`` section); ``--nodes/--gpus-per-node`` override them; bad
    values are a ``PipelineError``."""
    from pipelines.runner import PipelineError

    def params(**kw):
        out = compile_pipeline("retrain", tmp_path / "r.yaml", **kw)
        return next(yaml.safe_load_all(out.read_text()))["root"]["inputDefinitions"]["parameters"]

    p = params(model_size="1_5b")
    assert (p["nodes"]["defaultValue"], p["gpus_per_node"]["defaultValue"]) == (2, 8)
    assert p["model_size"]["defaultValue"] == "1_5b"
    p = params(model_size="1_5b", nodes=4, gpus_per_node=4)
    assert (p["nodes"]["defaultValue"], p["gpus_per_node"]["defaultValue"]) == (4, 4)
    with pytest.raises(PipelineError):
        compile_pipeline("retrain", tmp_path / "x.yaml", model_size="7b")
    with pytest.raises(PipelineError):
        compile_pipeline("retrain", tmp_path / "x.yaml", nodes=0)


def test_codec_preset_comes_from_the_size_preset():
    """``pipeline.<size>.codec`` in params.yaml picks the fit_codec preset; unset, the size's own name."""
    from pipelines.runner import retrain_arguments

    assert retrain_arguments("tiny", params={"pipeline": {"tiny": {}}})["codec_preset"] == "tiny"
    args = retrain_arguments("demo", params={"pipeline": {"demo": {"codec": "demo"}}})
    assert args["codec_preset"] == "demo"
    # the shipped params.yaml: both pipeline sizes fit codec v3 (issue 16), the main job and CI alike
    assert [retrain_arguments(s)["codec_preset"] for s in ("tiny", "demo")] == ["tiny-v3", "demo-v3-hifigan"]


def test_mslm_recipe_trains_once_and_keeps_the_other_steps(tmp_path):
    """``recipe="mslm"`` (issue 20): one training step on ``<model_size>_mslm.yaml`` feeding the same
    evaluation, registration, gate and deployment steps; the default build stays the golden one
    (test_pipeline_compiles_to_golden_yaml)."""
    from pipelines.runner import PipelineError

    out = compile_pipeline("retrain", tmp_path / "m.yaml", recipe="mslm")
    spec = next(yaml.safe_load_all(out.read_text()))
    dag = spec["root"]["dag"]["tasks"]
    train = [k for k in dag if k.startswith("train-phase")]
    assert train == ["train-phase"]
    p = dag["train-phase"]["inputs"]["parameters"]
    assert p["phase"]["runtimeValue"]["constant"] == 1 and "init" not in dag["train-phase"]["inputs"].get("artifacts", {})
    assert p["config"]["runtimeValue"]["constant"] == "{{$.inputs.parameters['pipelinechannel--model_size']}}_mslm.yaml"
    assert dag["evaluate-model"]["inputs"]["artifacts"]["bundle"]["taskOutputArtifact"]["producerTask"] == "train-phase"
    golden = next(yaml.safe_load_all((TESTDATA / "retrain_pipeline.yaml").read_text()))["root"]["dag"]["tasks"]
    assert set(golden) - set(dag) == {"train-phase-2", "train-phase-3"} and set(dag) <= set(golden)
    with pytest.raises(PipelineError, match="recipe"):
        compile_pipeline("retrain", tmp_path / "x.yaml", recipe="nope")
    with pytest.raises(PipelineError):
        compile_pipeline("retrain", tmp_path / "x.yaml", recipe="mslm", model_size="1_5b")  # no 1_5b_mslm.yaml
    with pytest.raises(PipelineError):
        compile_pipeline("ablation", tmp_path / "x.yaml", recipe="mslm")


def test_omni_recipe_trains_two_stages_and_keeps_the_other_steps(tmp_path):
    """``recipe="s2st-omni"`` (issue 20): its LLM is UniSS phase 1 on ``<model_size>_phase1.yaml``; stage 1
    on ``<model_size>_omni_stage1.yaml`` from that bundle, stage 2 from stage 1's bundle on
    ``_stage2.yaml``, feeding the same evaluation, registration, gate and deployment steps."""
    out = compile_pipeline("retrain", tmp_path / "o.yaml", recipe="s2st-omni")
    spec = next(yaml.safe_load_all(out.read_text()))
    dag = spec["root"]["dag"]["tasks"]
    assert sorted(k for k in dag if k.startswith("train-phase")) == ["train-phase", "train-phase-2", "train-phase-3"]
    llm, s1, s2 = dag["train-phase"], dag["train-phase-2"], dag["train-phase-3"]
    assert llm["inputs"]["parameters"]["phase"]["runtimeValue"]["constant"] == 1 and "init" not in llm["inputs"].get("artifacts", {})
    assert llm["inputs"]["parameters"]["config"]["runtimeValue"]["constant"].endswith("_phase1.yaml")
    assert s1["inputs"]["parameters"]["phase"]["runtimeValue"]["constant"] == 1
    assert s1["inputs"]["parameters"]["config"]["runtimeValue"]["constant"].endswith("_omni_stage1.yaml")
    assert s1["inputs"]["artifacts"]["init"]["taskOutputArtifact"]["producerTask"] == "train-phase"
    assert s2["inputs"]["parameters"]["phase"]["runtimeValue"]["constant"] == 2
    assert s2["inputs"]["parameters"]["config"]["runtimeValue"]["constant"].endswith("_omni_stage2.yaml")
    assert s2["inputs"]["artifacts"]["init"]["taskOutputArtifact"]["producerTask"] == "train-phase-2"
    assert dag["evaluate-model"]["inputs"]["artifacts"]["bundle"]["taskOutputArtifact"]["producerTask"] == "train-phase-3"
    golden = next(yaml.safe_load_all((TESTDATA / "retrain_pipeline.yaml").read_text()))["root"]["dag"]["tasks"]
    assert set(dag) == set(golden)


def test_ablation_labels_each_evaluation_with_its_variant(tmp_path):
    """Each variant's evaluate step gets the variant name the train step returns (MLflow tag
    ``uniss.variant``), so ``uniss compare`` rows read full / mslm / s2st-omni, not evaluate_model."""
    out = compile_pipeline("ablation", tmp_path / "a.yaml")
    spec = next(yaml.safe_load_all(out.read_text()))
    loop = next(t for t in spec["components"].values() if "dag" in t and "evaluate-model" in t["dag"]["tasks"])
    ev = loop["dag"]["tasks"]["evaluate-model"]["inputs"]["parameters"]["variant"]
    assert ev["taskOutputParameter"] == {"outputParameterKey": "Output", "producerTask": "train-variant"}


@pytest.mark.parametrize("size", ["tiny", "0_5b", "1_5b"])
def test_every_ablation_variant_loads_the_configs_it_trains(size):
    """Each variant of every ablation set (paper Table 4, issue 20's recipes) yields valid training
    configs for each step it runs, with its overrides applied: a bad override key fails here, at
    compile time, not after the other variants' hours of training (``use_linguistic=false`` once did)."""
    from pipelines.ablation import VARIANT_SETS
    from training.config import CONFIG_DIR, load_config
    from training.launch import RECIPE_STEPS

    checked = 0
    for variants in VARIANT_SETS.values():
        for v in variants:
            for phase, name in RECIPE_STEPS[v.get("recipe", "uniss")]:
                if v.get("recipe", "uniss") == "uniss" and phase not in v["phases"]:
                    continue
                if not (CONFIG_DIR / name.format(size=size)).exists():
                    continue  # the baselines ship tiny configs only
                cfg = load_config(name.format(size=size), v["overrides"])
                checked += 1
                if "data.use_linguistic=false" in v["overrides"]:
                    assert cfg.data.use_linguistic is False
    assert checked >= 10 if size == "tiny" else checked >= 8


def _tasks(node, found=None):
    """Every task of a compiled pipeline spec, nested DAGs (dsl.If / ParallelFor) included: name -> task."""
    found = {} if found is None else found
    if isinstance(node, dict):
        for name, task in (node.get("dag", {}) or {}).get("tasks", {}).items():
            found[name] = task
        for v in node.values():
            _tasks(v, found)
    elif isinstance(node, list):
        for v in node:
            _tasks(v, found)
    return found


def test_every_data_step_that_reads_the_data_params_takes_them_as_an_input(tmp_path):
    """KFP caches a step on its inputs. build_source reads the size presets (corpus sizes, voices, the
    alignment corpus) from params.yaml; while they were not an input, editing them served the corpus
    cached under the old ones (found 2026-12-04: alignment_speech 800 -> 2400 re-ran nothing)."""
    from kfp import compiler

    from pipelines.retrain import make_retrain_pipeline

    compiler.Compiler().compile(make_retrain_pipeline("local"), str(tmp_path / "r.yaml"))
    spec = yaml.safe_load((tmp_path / "r.yaml").read_text())
    tasks = _tasks(spec)
    for step in ("build-source", "synthesize-unist"):
        params = tasks[step]["inputs"]["parameters"]
        assert "data_params" in params, f"{step} does not take data_params"
        assert params["data_params"]["componentInputParameter"].endswith("data_params")
