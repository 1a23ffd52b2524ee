"""The end-to-end retraining pipeline: data -> GE gate -> phase 1 -> 2 -> 3 -> evaluate ->
register (alias ``challenger``) -> ``dsl.If(gate passed)`` -> promote (alias ``champion``) -> deploy.

The same pipeline function runs locally (``kfp.local`` SubprocessRunner, ``uniss retrain --local``)
and compiles to KFP YAML for a cluster (``uniss pipeline compile``). :func:`make_retrain_pipeline`
builds it for a target: ``cluster`` gives every step the S3 secret (kfp-kubernetes), runs each
training phase as a Kubeflow Trainer ``TrainJob`` of ``nodes`` x ``gpus_per_node`` GPUs created and
followed by its step (training/trainjob.py; the step itself needs no GPU, only the shared
checkpoint PVC), and puts evaluation on the GPU pool; ``local`` trains with ``torchrun`` on
``nproc`` CPU ranks and adds a code-version env var so that a change of library code invalidates
the local step cache.

``recipe`` (a build-time choice, not a pipeline parameter, so the default ``uniss`` build and its
golden YAML are unchanged) swaps the three phases for the one training step of the MSLM-S2ST
baseline (issue 20; ``<model_size>_mslm.yaml``, training/mslm.py) or the two fine-tuning stages of
S2ST-Omni (issue 20; ``<model_size>_omni_stage1.yaml`` then ``_stage2.yaml`` from its bundle,
training/omni.py); every other step is the same.
"""


from kfp import dsl, kubernetes

from components.data import (
    build_source,
    check_data_version,
    checkout_unist,
    fit_codec,
    synthesize_unist,
    tokenize_unist,
    validate_unist,
    version_unist,
)
from components.evaluation import (
    deploy_model,
    evaluate_model,
    gate_model,
    promote_model,
    record_rejection,
    register_model,
)
from components.training import train_phase
from training.config import load_config
from uniss.bundle import RECIPES
# Cluster settings live with the TrainJob engine (one owner, STYLE.md #18); override in a fork.
from training.trainjob import (
    CHECKPOINT_MOUNT,
    CHECKPOINT_PVC,
    GPU_NODE_SELECTOR,
    GPU_TOLERATION,
    S3_SECRET,
    S3_SECRET_ENV,
)

PIPELINE_NAME = "uniss-retrain"


#: Library trees each kind of step runs (local cache invalidation, see ``make_retrain_pipeline``).
STEP_CODE = {
    "data": ("uniss", "registry"),
    "train": ("uniss", "training"),
    "serve": ("uniss", "serving", "evaluation", "registry"),
}


def make_retrain_pipeline(target: str = "cluster", code_versions: dict[str, str] | None = None, *,
                          model_size: str = "tiny", nodes: int | None = None, gpus_per_node: int | None = None,
                          recipe: str = "uniss"):
    """Build the retraining pipeline for ``target`` (``local`` | ``cluster``).

    Args:
        target: ``local`` for kfp.local (no platform config), ``cluster`` for compiled YAML.
        code_versions: library tree -> content hash (local only). Each task gets env var
            ``UNISS_CODE_VERSION`` = the hashes of the trees it runs (``STEP_CODE``), so kfp.local's
            cache key changes exactly when code the step depends on changes.
        model_size: default of the ``model_size`` pipeline parameter.
        nodes, gpus_per_node: defaults of the pipeline parameters of the same names (the
            TrainJob shape on a cluster); ``None`` = the ``cluster`` section of
            ``<model_size>_phase1.yaml`` (1.5B: 2 x 8, paper §5.1), ``<model_size>_mslm.yaml`` for mslm.
        recipe: ``uniss`` (phases 1 -> 2 -> 3, paper §3.3), ``mslm`` (one ``train-mslm`` step on
            ``<model_size>_mslm.yaml``; issue 20) or ``s2st-omni`` (``train-omni-llm``: UniSS phase 1
            on ``<model_size>_phase1.yaml`` as its LLM, then ``train-omni-stage-1`` -> ``-2`` on
            ``<model_size>_omni_stage{1,2}.yaml``; issue 20).

    Returns:
        The ``@dsl.pipeline`` function.

    Raises:
        ValueError: unknown target or recipe, or a node count below 1; ConfigError: no shipped
            config for ``model_size`` (and ``recipe``).
    """
    if target not in ("local", "cluster"):
        raise ValueError(f"target must be 'local' or 'cluster', got {target!r}")
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {', '.join(RECIPES)}, got {recipe!r}")
    first = {"uniss": f"{model_size}_phase1.yaml", "mslm": f"{model_size}_mslm.yaml", "s2st-omni": f"{model_size}_omni_stage1.yaml"}
    cl = load_config(first[recipe]).cluster
    default_nodes = cl.nodes if nodes is None else int(nodes)
    default_gpus = cl.gpus_per_node if gpus_per_node is None else int(gpus_per_node)
    if default_nodes < 1 or default_gpus < 1:
        raise ValueError(f"nodes and gpus_per_node must be >= 1, got {default_nodes} x {default_gpus}")
    engine = "trainjob" if target == "cluster" else "torchrun"

    def common(task: dsl.PipelineTask, *, retries: int = 0, gpu: bool = False, code: str = "data",
               trainjob: bool = False) -> dsl.PipelineTask:
        if retries:
            task.set_retry(num_retries=retries, backoff_duration="30s")
        if target == "local":
            if code_versions:
                task.set_env_variable("UNISS_CODE_VERSION", "-".join(code_versions.get(d, "") for d in STEP_CODE[code]))
            return task
        kubernetes.use_secret_as_env(task, secret_name=S3_SECRET, secret_key_to_env=S3_SECRET_ENV)
        if trainjob:  # prepares the phase on the shared volume, then creates and follows the TrainJob
            task.set_cpu_request("4").set_memory_request("32G")
            kubernetes.mount_pvc(task, pvc_name=CHECKPOINT_PVC, mount_path=CHECKPOINT_MOUNT)
            task.set_env_variable("UNISS_CHECKPOINT_ROOT", CHECKPOINT_MOUNT)
        if gpu:
            task.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1)
            task.set_cpu_request("8").set_memory_request("64G")
            kubernetes.add_node_selector(task, label_key=GPU_NODE_SELECTOR[0], label_value=GPU_NODE_SELECTOR[1])
            kubernetes.add_toleration(task, **GPU_TOLERATION)
            kubernetes.mount_pvc(task, pvc_name=CHECKPOINT_PVC, mount_path=CHECKPOINT_MOUNT)
            task.set_env_variable("UNISS_CHECKPOINT_ROOT", CHECKPOINT_MOUNT)
        return task

    training = {"uniss": "3-phase ZeRO-3 training", "mslm": "MSLM-S2ST baseline ZeRO-3 training (one phase)",
                "s2st-omni": "S2ST-Omni two-stage ZeRO-3 fine-tuning (adapter, then adapter + LM)"}[recipe]

    @dsl.pipeline(name=PIPELINE_NAME, description=f"UniSS end-to-end retraining: UniST data -> {training} -> evaluation -> gated promotion -> KServe")
    def retrain(
        size: str = "tiny",
        seed: int = 0,
        data_version: str = "",
        data_params: dict = {},  # noqa: B006 - KFP pipeline parameter default
        sources: dict = {},  # noqa: B006 - the user's corpora (uniss.unist.ingest.IngestSpec); {} = demo corpus
        model_size: str = model_size,
        train_overrides: list = [],  # noqa: B006
        nproc: int = 2,
        nodes: int = default_nodes,
        gpus_per_node: int = default_gpus,
        eval_split: str = "test",
        eval_directions: list = ["en-zh", "zh-en"],  # noqa: B006
        eval_modes: list = ["quality", "performance", "direct"],  # noqa: B006
        eval_limit: int = 0,
        canary_percent: int = 10,
        codec_preset: str = "tiny",
    ) -> str:
        # ---- data: build a new version, or reuse an existing tag ------------------------------
        with dsl.If(data_version == "", name="build-new-data"):
            src = common(build_source(size=size, seed=seed, sources=sources, data_params=data_params))
            syn = common(synthesize_unist(source=src.outputs["source"], data_params=data_params))
            cod = common(fit_codec(unist=syn.outputs["unist"], preset=codec_preset))
            tok = common(tokenize_unist(unist=syn.outputs["unist"], codec=cod.outputs["codec"]))
            val = common(validate_unist(data=tok.outputs["tokenized"]))
            ver = common(version_unist(data=val.outputs["validated"]), retries=2)
        with dsl.Else(name="reuse-data-version"):
            old = common(check_data_version(data_version=data_version))
        version = dsl.OneOf(ver.output, old.output)
        # Downstream steps read the versioned data product back from the registry (kfp.local
        # cannot select between two branch artifacts with dsl.OneOf; a cluster could).
        data = common(checkout_unist(data_version=version), retries=2).outputs["data"]

        # ---- progressive training (paper §3.3) ---------------------------------------------
        def phase(n: int, init=None, *, config=None, name=None) -> dsl.PipelineTask:
            kwargs = {} if init is None else {"init": init.outputs["bundle"]}
            t = train_phase(phase=n, config=config or f"{model_size}_phase{n}.yaml", data=data, data_version=version,
                            overrides=train_overrides, nproc=nproc, engine=engine, nodes=nodes,
                            gpus_per_node=gpus_per_node, **kwargs)
            return common(t.set_display_name(name or f"train-phase-{n}"), code="train", trainjob=True)

        if recipe == "s2st-omni":  # S2ST-Omni (issue 20): its LLM is UniSS phase 1's LM on the same data (the
            # paper starts from a pretrained LLM, which the tiny size lacks); then adapter-only stage 1, adapter + LM stage 2
            llm = phase(1, name="train-omni-llm")
            s1 = phase(1, llm, config=f"{model_size}_omni_stage1.yaml", name="train-omni-stage-1")
            trained = phase(2, s1, config=f"{model_size}_omni_stage2.yaml", name="train-omni-stage-2")
        elif recipe == "mslm":  # MSLM-S2ST baseline (issue 20): one phase, its own sample formats
            trained = phase(1, config=f"{model_size}_mslm.yaml", name="train-mslm")
        else:
            p1 = phase(1)
            p2 = phase(2, p1)
            trained = phase(3, p2)

        # ---- evaluate, gate, register + promote, deploy -------------------------------------
        ev = common(evaluate_model(bundle=trained.outputs["bundle"], data=data, split=eval_split,
                                   directions=eval_directions, modes=eval_modes, limit=eval_limit), gpu=True, code="serve")
        # Every trained candidate is registered (alias ``challenger``, lineage tags) so it can be
        # inspected, served or force-promoted; only the gate moves ``champion`` and deploys.
        reg = common(register_model(bundle=trained.outputs["bundle"], metrics_json=ev.outputs["Output"], data_version=version),
                     retries=2, code="serve")
        gate = common(gate_model(challenger_metrics=ev.outputs["Output"]), code="serve").after(reg)
        with dsl.If(gate.output == True, name="gate-passed"):  # noqa: E712 - KFP condition
            pro = common(promote_model(version=reg.output), retries=2, code="serve")
            dep = common(deploy_model(version=pro.output, data_version=version, canary_percent=canary_percent), code="serve")
        with dsl.Else(name="gate-refused"):
            rej = common(record_rejection(challenger_metrics=ev.outputs["Output"], version=reg.output,
                                          data_version=version), code="serve")
        return dsl.OneOf(dep.outputs["Output"], rej.output)

    return retrain
