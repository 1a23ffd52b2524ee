"""Training components: one progressive-training phase per task (paper §3.3) under DeepSpeed ZeRO-3."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from uniss.version import PROJECT_IMAGE as BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE)
def train_phase(
    phase: int,
    config: str,
    data: Input[Dataset],
    data_version: str,
    overrides: list,
    nproc: int,
    bundle: Output[Model],
    init: Input[Model] = None,
    engine: str = "torchrun",
    nodes: int = 0,
    gpus_per_node: int = 0,
) -> str:
    """Train one phase from the previous phase's bundle (``init``; none for phase 1 or the
    ``w/o phase 1`` ablation) and export a model bundle. Checkpoints live in a stable directory
    keyed by the inputs, so a killed run resumes from its last checkpoint when rerun. The codec the
    data was tokenized with travels inside the dataset (``data/codec``) and into the bundle.
    ``engine``: ``torchrun`` (``nproc`` ranks in this pod) or ``trainjob`` (a Kubeflow Trainer
    TrainJob of ``nodes`` x ``gpus_per_node`` ranks; 0 = the phase config's ``cluster`` section)."""
    from training.launch import run_phase_step as run

    info = run(
        phase=phase,
        config=config,
        data_dir=data.path,
        data_version=data_version,
        init_bundle=None if init is None else init.path,
        overrides=list(overrides),
        nproc=nproc,
        out_dir=bundle.path,
        engine=engine,
        nodes=nodes,
        gpus_per_node=gpus_per_node,
    )
    bundle.metadata.update(info)
    return str(info.get("mlflow_run_id", ""))


@dsl.component(base_image=BASE_IMAGE)
def train_variant(
    variant: dict,
    model_size: str,
    data: Input[Dataset],
    data_version: str,
    nproc: int,
    bundle: Output[Model],
) -> str:
    """Train one ablation variant: ``variant = {"name", "phases": [..], "overrides": [..]}`` (and
    optionally ``"recipe"``: ``uniss`` by default, ``mslm`` or ``s2st-omni``) runs the listed phases
    in order, each from the previous one's weights (paper Table 4 ablations: ``w/o phase 1`` =
    phases [2, 3]; ``w/o linguistic`` = override ``data.use_linguistic=false``; ``phase 1+2`` = phases
    [1, 2]; issue 20's recipe comparison: one variant per recipe)."""
    from training.launch import run_phases_step as run

    info = run(
        phases=[int(p) for p in variant["phases"]],  # KFP passes JSON numbers as floats
        model_size=model_size,
        data_dir=data.path,
        data_version=data_version,
        overrides=list(variant.get("overrides", [])),
        nproc=nproc,
        out_dir=bundle.path,
        run_name=str(variant["name"]),
        recipe=str(variant.get("recipe", "uniss")),
    )
    bundle.metadata.update(info)
    return str(variant["name"])
