"""The ablation pipeline (paper Table 4 as configuration): one trained variant per ``ParallelFor``
iteration on the same data version, each evaluated and logged to MLflow with its variant name, so
``uniss compare RUN...`` prints the delta table. The same pipeline compares the recipes of issue 20
(UniSS, MSLM-S2ST, S2ST-Omni) with ``variants=RECIPE_VARIANTS``.
"""

from kfp import dsl

from components.data import checkout_unist
from components.evaluation import evaluate_model
from components.training import train_variant

PIPELINE_NAME = "uniss-ablation"

#: Paper Table 4 / issue 7 ablations. ``Direct S2ST`` is an inference mode: it is evaluated for
#: every variant through ``eval_modes``.
DEFAULT_VARIANTS = [
    {"name": "full", "phases": [1, 2, 3], "overrides": []},
    {"name": "wo_phase1", "phases": [2, 3], "overrides": []},
    {"name": "wo_linguistic", "phases": [1, 2, 3], "overrides": ["data.use_linguistic=false"]},
    {"name": "phase1_2", "phases": [1, 2], "overrides": []},
]

#: Issue 20: the three recipes side by side on one data version (UniSS's three phases, the
#: MSLM-S2ST baseline's one phase, S2ST-Omni's two stages; ``training.launch.RECIPE_STEPS``).
RECIPE_VARIANTS = [
    {"name": "uniss", "recipe": "uniss", "phases": [1, 2, 3], "overrides": []},
    {"name": "mslm", "recipe": "mslm", "phases": [1], "overrides": []},
    {"name": "s2st-omni", "recipe": "s2st-omni", "phases": [1, 2], "overrides": []},
]

#: Variant sets ``uniss pipeline ablation --variants`` runs.
VARIANT_SETS = {"table4": DEFAULT_VARIANTS, "recipes": RECIPE_VARIANTS}


@dsl.pipeline(name=PIPELINE_NAME, description="UniSS ablations (paper Table 4) on one data version")
def ablation(
    data_version: str,
    variants: list = DEFAULT_VARIANTS,  # noqa: B006 - KFP pipeline parameter default
    model_size: str = "tiny",
    nproc: int = 2,
    eval_split: str = "test",
    eval_directions: list = ["en-zh", "zh-en"],  # noqa: B006
    eval_modes: list = ["quality", "performance", "direct"],  # noqa: B006
    eval_limit: int = 0,
):
    data = checkout_unist(data_version=data_version).set_retry(num_retries=2)
    # parallelism 1: variants share the machine's CPUs (a cluster can raise it per GPU pool).
    with dsl.ParallelFor(items=variants, parallelism=1, name="variants") as variant:
        tr = train_variant(variant=variant, model_size=model_size, data=data.outputs["data"],
                           data_version=data_version, nproc=nproc)
        evaluate_model(bundle=tr.outputs["bundle"], data=data.outputs["data"], split=eval_split,
                       directions=eval_directions, modes=eval_modes, limit=eval_limit,
                       variant=tr.outputs["Output"])  # the variant's name labels its row in uniss compare
