"""``uniss train``: one progressive-training phase under DeepSpeed ZeRO-3 (paper §3.3).

Example (tiny model, CPU, 2 ranks)::

    uniss train --phase 1 --config tiny_phase1.yaml --data .uniss/data/demo --out runs/p1
    uniss train --phase 2 --config tiny_phase2.yaml --data .uniss/data/demo --out runs/p2 --init runs/p1
    uniss train --phase 3 --config tiny_phase3.yaml --data .uniss/data/demo --out runs/p3 --init runs/p2 optim.lr=3e-5
    uniss train --recipe mslm --data .uniss/data/demo --out runs/mslm   # MSLM-S2ST baseline: phase 1 of tiny_mslm.yaml
    uniss train --recipe s2st-omni --data .uniss/data/demo --out runs/omni1 --init runs/p1     # S2ST-Omni stage 1 (LLM: a phase-1 bundle)
    uniss train --recipe s2st-omni --phase 2 --data .uniss/data/demo --out runs/omni2 --init runs/omni1  # stage 2

Rerunning the same command after a crash resumes from the last checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pipelines.cli._common import console, friendly_errors


@friendly_errors
def train(
    phase: int = typer.Option(None, "--phase", min=1, max=3, help="1 alignment | 2 CoT S2ST | 3 refinement (required for uniss; mslm: 1; s2st-omni: the stage, 1 or 2, default 1)"),
    config: str = typer.Option(None, "--config", help="YAML path or shipped name (tiny_phase1.yaml ...; required for uniss; mslm: tiny_mslm.yaml)"),
    data: Path = typer.Option(..., "--data", help="validated UniST dataset directory"),
    out: Path = typer.Option(..., "--out", help="bundle directory to write"),
    init: Path = typer.Option(None, "--init", help="previous phase's bundle (phases 2-3)"),
    nproc: int = typer.Option(2, "--nproc", min=1, help="ranks (processes) for torchrun"),
    work_dir: Path = typer.Option(None, "--work-dir", help="checkpoint dir (default: keyed by the inputs)"),
    overrides: list[str] = typer.Argument(None, help="config overrides key=value (optim.lr=1e-4 data.use_linguistic=false)"),
    recipe: str = typer.Option("uniss", "--recipe", help="uniss (progressive UniSS phases) | mslm (MSLM-S2ST baseline, one phase) | s2st-omni (S2ST-Omni, stage = --phase 1 or 2)"),
) -> None:
    """Train one phase and export its model bundle.

    ``--recipe`` must be the config's ``recipe`` (training/config.py); ``uniss`` needs ``--phase``
    and ``--config``, ``mslm`` defaults them to 1 and ``tiny_mslm.yaml``, ``s2st-omni`` to stage 1 and
    ``tiny_omni_stage<phase>.yaml`` (issue 20; stage 2 needs ``--init`` the stage-1 bundle).
    """
    from training.config import load_config
    from training.launch import run_phase
    from uniss.bundle import RECIPES

    if recipe not in RECIPES:
        raise typer.BadParameter(f"--recipe must be one of {', '.join(RECIPES)}, got {recipe!r}")
    if recipe == "mslm":
        phase = 1 if phase is None else phase
        config = config or "tiny_mslm.yaml"
    elif recipe == "s2st-omni":
        phase = 1 if phase is None else phase
        config = config or f"tiny_omni_stage{phase}.yaml"
    for name, value in (("--phase", phase), ("--config", config)):
        if value is None:
            raise typer.BadParameter(f"{name} is required (recipe {recipe})")
    got = load_config(config, list(overrides or [])).recipe
    if got != recipe:
        raise typer.BadParameter(f"--config {config} trains recipe {got!r}, not --recipe {recipe!r}")

    bundle = run_phase(phase, config, data, out, init_bundle=init, overrides=list(overrides or []), nproc=nproc,
                       work_dir=work_dir)
    import json

    tm = json.loads((bundle / "bundle.json").read_text()).get("train_metrics", {})
    console.print(f"phase {phase}: {tm.get('steps')} steps, loss {tm.get('loss_start'):.3f} -> {tm.get('loss_end'):.3f}; bundle {bundle}")


def register(app: typer.Typer) -> None:
    """Add ``uniss train`` to the root app."""
    app.command("train")(train)
