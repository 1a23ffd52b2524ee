"""Checkpointer (training/checkpointer.py) against a stand-in engine in a one-rank gloo group:
client state round trip, pruning to ``keep``, a fresh phase, an unloadable checkpoint."""

import pytest
import torch.distributed as dist

from training.checkpointer import ZeroCheckpointer
from training.workdir import TrainError


class _Engine:
    """Writes DeepSpeed's layout (``<dir>/<tag>/``, ``<dir>/latest``) and remembers client states."""

    def __init__(self, client=None):
        self.saved = {}
        self.client = client

    def save_checkpoint(self, save_dir, tag, client_state):
        from pathlib import Path

        (Path(save_dir) / tag).mkdir(parents=True)
        (Path(save_dir) / "latest").write_text(tag)
        self.saved[tag] = dict(client_state)

    def load_checkpoint(self, load_dir, load_optimizer_states, load_lr_scheduler_states):
        assert load_optimizer_states and load_lr_scheduler_states
        return load_dir, self.client


@pytest.fixture
def one_rank_group(tmp_path):
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_save_keeps_the_newest_and_load_returns_step_and_position(tmp_path, one_rank_group):
    ck = ZeroCheckpointer(tmp_path / "ds", keep=2, rank=0)
    assert not ck.has_checkpoint() and ck.load(_Engine()) is None
    eng = _Engine()
    for step in (4, 8, 12):
        assert ck.save(eng, step=step, packs_consumed=step * 2) == f"step{step}"
    assert sorted(p.name for p in (tmp_path / "ds").glob("step*")) == ["step12", "step8"]
    assert eng.saved["step12"] == {"step": 12, "packs_consumed": 24}
    assert ck.has_checkpoint() and ck.load(_Engine(client=eng.saved["step12"])) == (12, 24)


def test_unloadable_checkpoint_is_a_train_error(tmp_path):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "latest").write_text("step4")
    with pytest.raises(TrainError, match="cannot load"):
        ZeroCheckpointer(tmp_path / "ds", keep=2, rank=0).load(_Engine(client=None))
