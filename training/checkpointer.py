"""The recipe's checkpointer: DeepSpeed ZeRO-3 checkpoints of one phase (STYLE.md #15, after
torchtune's checkpointer objects in ``torchtune/training/checkpointing/_checkpointer.py``).

Layout (``WORKDIR/ds``, DeepSpeed's own)::

    ds/latest            the tag of the last complete checkpoint
    ds/step<N>/          one ZeRO-3 checkpoint per rank (model + optimizer shards, LR scheduler
                         state) and the client state ``{"step": N, "packs_consumed": P}``

Only the ``keep`` newest ``step<N>`` directories are kept. Export consolidates the ``latest``
one (training/export.py).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.workdir import TrainError

__all__ = ["ZeroCheckpointer", "check_resume_tag", "latest_tag"]


def latest_tag(ds_dir: str | Path) -> str | None:
    """The tag (``step<N>``) of the last complete checkpoint in ``ds_dir`` (DeepSpeed's
    ``latest`` file), or ``None`` when there is none."""
    p = Path(ds_dir) / "latest"
    return p.read_text().strip() if p.is_file() else None


def check_resume_tag(ds_dir: str | Path, expected: str) -> None:
    """Check that ``ds_dir`` holds checkpoint ``expected`` (or a later ``step<N>``) before ranks
    start: a cluster launcher passes the tag it saw (training/trainjob.py), so a node that does
    not see the shared checkpoint volume fails at once instead of silently training from step 0.

    Raises:
        TrainError: no checkpoint, or an older one than ``expected``.
    """
    got = latest_tag(ds_dir)

    def step(tag: str) -> int:
        return int(tag[4:]) if tag.startswith("step") and tag[4:].isdigit() else -1

    if got is None or step(got) < step(expected):
        raise TrainError(f"asked to resume from checkpoint {expected} but {ds_dir} holds {got or 'no checkpoint'}: "
                         "is the checkpoint volume shared with this node?")


@dataclass
class ZeroCheckpointer:
    """Save and load the ZeRO-3 checkpoints of a DeepSpeed engine in ``ds_dir``.

    Args:
        ds_dir: checkpoint directory (``WORKDIR/ds``).
        keep: how many ``step<N>`` checkpoints to keep (config ``keep_checkpoints``).
        rank: this process's rank; rank 0 removes old checkpoints.
    """

    ds_dir: Path
    keep: int
    rank: int

    def has_checkpoint(self) -> bool:
        """Whether a complete checkpoint exists (DeepSpeed wrote ``ds/latest``)."""
        return (self.ds_dir / "latest").is_file()

    def load(self, engine: Any) -> tuple[int, int] | None:
        """Restore the engine (weights, optimizer, LR scheduler) from ``ds/latest``.

        Returns:
            ``(step, packs_consumed)`` of the checkpoint, or ``None`` when there is none
            (a fresh phase).

        Raises:
            TrainError: DeepSpeed could not load the checkpoint.
        """
        if not self.has_checkpoint():
            return None
        _, client = engine.load_checkpoint(str(self.ds_dir), load_optimizer_states=True, load_lr_scheduler_states=True)
        if client is None:
            raise TrainError(f"cannot load the checkpoint in {self.ds_dir}")
        return int(client["step"]), int(client["packs_consumed"])

    def save(self, engine: Any, *, step: int, packs_consumed: int) -> str:
        """Write checkpoint ``ds/step<step>`` with the step counter and data position (every rank
        calls this); after all ranks wrote, rank 0 removes step checkpoints beyond ``keep``.

        Returns:
            The checkpoint tag (``step<N>``).
        """
        import torch

        tag = f"step{step}"
        engine.save_checkpoint(str(self.ds_dir), tag=tag, client_state={"step": step, "packs_consumed": packs_consumed})
        torch.distributed.barrier()
        if self.rank == 0:
            tags = sorted((p for p in self.ds_dir.glob("step*") if p.is_dir()), key=lambda p: int(p.name[4:]))
            for old in tags[: -self.keep]:
                shutil.rmtree(old, ignore_errors=True)
        return tag
