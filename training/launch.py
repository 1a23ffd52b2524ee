"""Launching progressive-training phases: prepare -> run the recipe on some engine -> export.

Library/CLI entry points::

    from training.launch import run_phase
    bundle = run_phase(1, "tiny_phase1.yaml", data_dir, out_dir)            # phase 1
    bundle2 = run_phase(2, "tiny_phase2.yaml", data_dir, out2, init_bundle=bundle)

    uniss train --phase 1 --config tiny_phase1.yaml --data DATA --out OUT [key=value ...]

:func:`run_phase` checks everything before compute and prepares the work directory
(:func:`training.workdir.prepare_phase`), hands it to a :class:`Launcher` that runs the recipe
(training/recipe.py) until the phase is done, and exports the bundle
(:func:`training.export.export_bundle`). A launcher is one engine behind a small interface; the
local engine is :class:`TorchrunLauncher` (a ``torchrun`` subprocess with ``nproc`` ranks, gloo
and ``DS_ACCELERATOR=cpu`` without CUDA), so it runs inside a KFP step. The cluster engine is
:class:`training.trainjob.TrainJobLauncher`: a Kubeflow Trainer ``TrainJob`` of ``nodes`` x
``gpus_per_node`` ranks (ARCHITECTURE.md "training"), created and followed from the pipeline step.

Phases (ARCHITECTURE.md "Progressive training"): phase 1 starts from random weights + a corpus
BPE (tiny) or a local Qwen2.5-Instruct checkpoint (``pretrained``); phases 2 and 3 start from the
previous phase's exported bundle (an error before any compute if missing).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from training import recipe
from training.export import export_bundle
from training.recipe import die_with_parent
from training.workdir import DONE_FILE, START_DIR, TrainError, checkpoint_root, prepare_phase

__all__ = [
    "Launcher",
    "TorchrunLauncher",
    "TrainError",
    "engine_launcher",
    "run_phase",
    "run_phase_step",
    "run_phases_step",
]


class Launcher(Protocol):
    """An engine that runs the recipe on a prepared phase work directory until it is done.

    ``launch`` returns once the ranks finished (``WORK/done.json`` written by the recipe) and
    raises :class:`~training.workdir.TrainError` when they failed. A rerun on the same work
    directory resumes from its last checkpoint (the recipe does that on its own).
    """

    def launch(self, work: Path, nproc: int, timeout_s: float | None = None) -> None:
        """Run ``nproc`` ranks of the recipe on ``work``; ``timeout_s`` (seconds) bounds the wait."""
        ...


@dataclass(frozen=True)
class TorchrunLauncher:
    """The local engine: ``torchrun --standalone`` with ``nproc`` ranks on this machine.

    The ranks' output goes to ``WORK/launcher.log`` (to the console when ``UNISS_TRAIN_STDOUT``
    is set). torchrun and its ranks die with their launcher (``PR_SET_PDEATHSIG``), so a SIGKILL
    to the calling process never leaves orphan ranks writing checkpoints.
    """

    def command(self, work: Path, nproc: int) -> list[str]:
        """The torchrun command line (``python -m torch.distributed.run ... -m training.recipe
        worker --work WORK``)."""
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                "-m", recipe.__name__, "worker", "--work", str(work)]

    def launch(self, work: Path, nproc: int, timeout_s: float | None = None) -> None:
        """Run torchrun and wait for it.

        A non-zero exit after the recipe wrote ``WORK/done.json`` (after a barrier of every rank,
        ``training.recipe.cleanup``) is a crash while the processes exit, not a failed phase: it is
        logged to ``launcher.log`` and the phase counts as done. Seen on CI, 2026-12-04: a rank died of
        "terminate called without an active exception" (SIGABRT) after destroying its process group.

        Raises:
            TrainError: torchrun exited non-zero before the phase was done (the message holds the
                log's last 3,000 characters).
            subprocess.TimeoutExpired: ``timeout_s`` passed (torchrun is killed first).
        """
        env = dict(os.environ)
        import torch

        if not torch.cuda.is_available():
            env.setdefault("DS_ACCELERATOR", "cpu")
        env.setdefault("OMP_NUM_THREADS", "1")
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        env.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")
        cmd = self.command(work, nproc)
        log = work / "launcher.log"
        with log.open("ab") as lf:
            lf.write(f"\n$ {' '.join(cmd)}\n".encode())
            proc = subprocess.Popen(cmd, env=env, stdout=None if os.environ.get("UNISS_TRAIN_STDOUT") else lf,
                                    stderr=subprocess.STDOUT if not os.environ.get("UNISS_TRAIN_STDOUT") else None,
                                    preexec_fn=die_with_parent)
            try:
                rc = proc.wait(timeout=timeout_s)
            except BaseException:
                proc.kill()
                proc.wait()
                raise
        if rc != 0 and (work / DONE_FILE).is_file():  # launch runs only while done.json is absent
            with log.open("a") as lf:
                lf.write(f"\nuniss: torchrun exited {rc} after every rank finished the phase ({DONE_FILE} written); "
                         "a crash at process exit, the phase is done\n")
            return
        if rc != 0:
            tail = log.read_text(errors="replace")[-3000:]
            raise TrainError(f"training ranks failed (exit {rc}); log {log}:\n{tail}")


def run_phase(
    phase: int,
    config_path_or_name: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    init_bundle: str | Path | None = None,
    overrides: list[str] | None = None,
    nproc: int = 2,
    *,
    work_dir: str | Path | None = None,
    data_version: str | None = None,
    timeout_s: float | None = None,
    launcher: Launcher | None = None,
) -> Path:
    """Train one phase under DeepSpeed ZeRO-3 with ``nproc`` ranks (by default a ``torchrun``
    subprocess, so it runs inside a KFP step) and export its bundle to ``out_dir``.

    Rerunning the same call after a crash resumes from the last checkpoint; rerunning after
    success only re-exports.

    Args:
        phase: 1, 2 or 3.
        config_path_or_name: YAML path or shipped name (``tiny_phase1.yaml``).
        data_dir: validated UniST dataset directory (with ``codec/``).
        out_dir: bundle directory to write.
        init_bundle: previous phase's bundle (required for phases 2-3).
        overrides: ``key=value`` config overrides.
        nproc: ranks (processes) to launch.
        work_dir: checkpoint/work directory (default: keyed by the inputs under
            :func:`checkpoint_root`).
        data_version: data version tag recorded in the bundle (default: the manifest's version).
        timeout_s: seconds to wait for the ranks (default: no limit).
        launcher: the engine that runs the ranks (default :class:`TorchrunLauncher`).

    Returns:
        ``Path`` of the bundle.

    Raises:
        ConfigError, DataError, TrainError: before compute for bad config / data / init weights;
        ``TrainError`` when the ranks fail.
    """
    wd = prepare_phase(phase, config_path_or_name, data_dir, init_bundle=init_bundle, overrides=overrides,
                       work_dir=work_dir, data_version=data_version)
    if not (wd / DONE_FILE).is_file():
        (launcher or TorchrunLauncher()).launch(wd, nproc, timeout_s)
    return export_bundle(wd, out_dir)


ENGINES = ("torchrun", "trainjob")


def engine_launcher(engine: str, config: str, overrides: list[str], nproc: int, *, nodes: int = 0,
                    gpus_per_node: int = 0) -> tuple[Launcher, int]:
    """The launcher and rank count of an engine name.

    ``torchrun``: :class:`TorchrunLauncher` with ``nproc`` local ranks. ``trainjob``:
    :class:`~training.trainjob.TrainJobLauncher` with ``nodes x gpus_per_node`` ranks (one per
    GPU); 0 takes the phase config's ``cluster`` section (the 1.5B configs: 2 x 8, paper §5.1).

    Raises:
        TrainError: unknown engine; ConfigError: the config does not load.
    """
    if engine == "torchrun":
        return TorchrunLauncher(), nproc
    if engine != "trainjob":
        raise TrainError(f"unknown training engine {engine!r}; expected one of {', '.join(ENGINES)}")
    from training.config import load_config
    from training.trainjob import TrainJobLauncher, TrainJobSpec

    cl = load_config(config, overrides).cluster
    spec = TrainJobSpec(nodes=nodes or cl.nodes, gpus_per_node=gpus_per_node or cl.gpus_per_node)
    return TrainJobLauncher(spec), spec.world_size


def run_phase_step(*, phase: int, config: str, data_dir: str, data_version: str | None, init_bundle: str | None,
                   overrides: list[str], nproc: int, out_dir: str, engine: str = "torchrun", nodes: int = 0,
                   gpus_per_node: int = 0) -> dict[str, Any]:
    """KFP component body helper (``components/training.py::train_phase``): :func:`run_phase` on
    the engine (:func:`engine_launcher`: local ``torchrun`` with ``nproc`` ranks, or a
    ``trainjob`` of ``nodes x gpus_per_node``) and the bundle metadata to record on the output
    artifact."""
    launcher, ranks = engine_launcher(engine, config, overrides, nproc, nodes=nodes, gpus_per_node=gpus_per_node)
    b = run_phase(phase, config, data_dir, out_dir, init_bundle=init_bundle, overrides=overrides, nproc=ranks,
                  data_version=data_version or None, launcher=launcher)
    meta = json.loads((b / "bundle.json").read_text())
    tm = meta.get("train_metrics", {})
    return {"phase": phase, "loss_start": tm.get("loss_start"), "loss_end": tm.get("loss_end"),
            "steps": tm.get("steps"), "data_version": meta.get("data_version"),
            "mlflow_run_id": meta.get("mlflow_run_id", "")}


#: The phases and shipped config of each recipe's steps (``<size>`` = the model size), in order,
#: each later step starting from the previous step's bundle; ``uniss`` lists its three progressive
#: phases (paper §3.3; a variant picks a subset), the issue-20 baselines their fixed steps: MSLM-S2ST
#: one phase (``<size>_mslm.yaml``); S2ST-Omni UniSS phase 1 as its LLM (the paper starts from a
#: pretrained LLM; the tiny size has none, so its LM is pretrained on the same data's phase-1
#: alignment tasks), then its two fine-tuning stages (``<size>_omni_stage{1,2}.yaml``, paper §2.3).
RECIPE_STEPS: dict[str, tuple[tuple[int, str], ...]] = {
    "uniss": ((1, "{size}_phase1.yaml"), (2, "{size}_phase2.yaml"), (3, "{size}_phase3.yaml")),
    "mslm": ((1, "{size}_mslm.yaml"),),
    "s2st-omni": ((1, "{size}_phase1.yaml"), (1, "{size}_omni_stage1.yaml"), (2, "{size}_omni_stage2.yaml")),
}


def run_phases_step(*, phases: list[int], model_size: str, data_dir: str, data_version: str | None,
                    overrides: list[str], nproc: int, out_dir: str, run_name: str = "",
                    recipe: str = "uniss") -> dict[str, Any]:
    """Ablation / comparison helper (``components/training.py::train_variant``): the steps of
    ``recipe`` (:data:`RECIPE_STEPS`) in order, each from the previous one's bundle; the last
    bundle goes to ``out_dir``, intermediate bundles next to the work directories.

    Args:
        phases: ``uniss``: an increasing subset of 1, 2, 3 (the Table 4 ablations); a baseline
            (``mslm``, ``s2st-omni``) runs all of its steps: empty, or its distinct phase numbers
            (``mslm``: [1]; ``s2st-omni``: [1, 2]).
        recipe: ``uniss``, ``mslm`` or ``s2st-omni`` (issue 20: the recipes compared on one data
            version).

    Raises:
        TrainError: an unknown recipe, or phases that are not an increasing list of the recipe's
            phases (a baseline runs all of its steps).
    """
    if recipe not in RECIPE_STEPS:
        raise TrainError(f"recipe must be one of {', '.join(RECIPE_STEPS)}, got {recipe!r}")
    all_steps = RECIPE_STEPS[recipe]
    numbers = sorted({p for p, _ in all_steps})
    if recipe != "uniss":
        if list(phases) not in ([], numbers):
            raise TrainError(f"the {recipe} recipe runs all of its phases {numbers}, got {list(phases)}")
        steps = list(all_steps)
    else:
        if not phases or sorted(phases) != list(phases) or any(p not in numbers for p in phases):
            raise TrainError(f"phases must be an increasing list from {set(numbers)}, got {phases}")
        steps = [s for s in all_steps if s[0] in phases]
    prev: Path | None = None
    info: dict[str, Any] = {"variant": run_name, "phases": [p for p, _ in steps], "recipe": recipe}
    for i, (p, cfg) in enumerate(steps):
        last = i == len(steps) - 1
        ovr = list(overrides)
        init = prev
        config = cfg.format(size=model_size)
        if p > 1 and prev is None:
            # "w/o phase 1": phase 2 starts from the untrained start weights (random init +
            # corpus BPE / pretrained text LM): build them as a phase-1 start.
            wd1 = prepare_phase(1, all_steps[0][1].format(size=model_size), data_dir, overrides=ovr, data_version=data_version)
            init = wd1 / START_DIR
        out = Path(out_dir) if last else checkpoint_root() / f"bundles/{run_name or 'variant'}_step{i + 1}_phase{p}"
        prev = run_phase(p, config, data_dir, out, init_bundle=init, overrides=ovr,
                         nproc=nproc, data_version=data_version or None)
        tm = json.loads((prev / "bundle.json").read_text()).get("train_metrics", {})
        info[f"step{i + 1}_loss_end"] = tm.get("loss_end")
    return info
