"""Sequence packing: several samples in one fixed-length sequence, attention never crossing a
sample boundary (paper §5.1 / App. B.1: 18k-token packs; tiny config: 2048).

How the boundary is enforced: **position ids restart at 0 for every sample** and the model is
called with ``attention_mask=None`` and no KV cache. transformers 5.23 then detects the packed
layout from the position ids (``masking_utils.find_packed_sequence_indices``: a new sample starts
wherever the position does not increase by 1) and builds a block-diagonal causal mask for the
``sdpa`` and ``eager`` attention implementations (``packed_sequence_compatibility_function``) — the
same route flash-attention's varlen kernels take on GPU (``DataCollatorWithFlattening``).
``tests/unit/training/test_packing.py`` checks that a packed forward equals the unpacked forwards
(atol 1e-4), so a change of that behaviour upstream fails the tests.
:func:`block_causal_mask` builds the equivalent explicit 4-D mask (used by that test as a
second reference).

Loss across boundaries: the causal-LM loss shifts labels by one, so the last token of sample
``i`` is scored on the first token of sample ``i+1``; that label is a prompt token (-100), so no
cross-sample target is ever trained. Padding at the end of a pack has label -100 and its own
position run.

Shape legend: ``L`` = pack length (``seq_len``), ``B`` = packs in a batch, ``N`` = samples.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from training.samples import IGNORE_INDEX, Sample
from uniss.errors import UnissError

__all__ = ["Pack", "PackingError", "PackStats", "block_causal_mask", "pack_samples", "pad_samples"]


class PackingError(UnissError, ValueError):
    """Bad packing arguments (non-positive length, every sample longer than the pack)."""


@dataclass(frozen=True)
class Pack:
    """One training sequence.

    Attributes:
        input_ids: ``(L,)`` int64.
        labels: ``(L,)`` int64 (-100 on prompts and padding).
        position_ids: ``(L,)`` int64, restarting at 0 for each sample (and for the padding run).
        n_real: number of non-padding positions.
        n_samples: samples inside.
        members: indices (into the list given to :func:`pack_samples`/:func:`pad_samples`) of the
            samples inside, in the order they sit in the pack (the S2ST-Omni recipe maps each
            pack's placeholder positions to its samples' speech features with it,
            training/omni.py).
    """

    input_ids: np.ndarray
    labels: np.ndarray
    position_ids: np.ndarray
    n_real: int
    n_samples: int
    members: tuple[int, ...] = ()


@dataclass(frozen=True)
class PackStats:
    """Packing result summary: ``useful_share`` = real tokens / all tokens (target >= 0.98)."""

    n_packs: int
    n_samples: int
    n_dropped: int
    real_tokens: int
    total_tokens: int

    @property
    def useful_share(self) -> float:
        return self.real_tokens / self.total_tokens if self.total_tokens else 0.0


def _assemble(samples: Sequence[Sample], length: int, pad_id: int, members: Sequence[int] = ()) -> Pack:
    ids = np.full(length, pad_id, dtype=np.int64)
    labels = np.full(length, IGNORE_INDEX, dtype=np.int64)
    pos = np.zeros(length, dtype=np.int64)
    o = 0
    for s in samples:
        n = len(s)
        ids[o : o + n] = s.input_ids
        labels[o : o + n] = s.labels
        pos[o : o + n] = np.arange(n)
        o += n
    pos[o:] = np.arange(length - o)  # padding is its own run
    return Pack(ids, labels, pos, n_real=o, n_samples=len(samples), members=tuple(int(i) for i in members))


def pack_samples(samples: Sequence[Sample], seq_len: int, pad_id: int) -> tuple[list[Pack], PackStats]:
    """Best-fit-decreasing packing of samples into sequences of exactly ``seq_len`` tokens.

    Samples longer than ``seq_len`` are dropped (counted in ``PackStats.n_dropped``; the trainer
    logs it). The order of the returned packs follows the first-placed sample, so a seeded shuffle
    of ``samples`` gives a seeded pack order.

    Args:
        samples: the phase's samples.
        seq_len: pack length in tokens.
        pad_id: id written in the unused tail (``<|endoftext|>``).

    Returns:
        ``(packs, stats)``.

    Raises:
        PackingError: ``seq_len <= 0`` or every sample is longer than ``seq_len``.
    """
    if seq_len <= 0:
        raise PackingError(f"seq_len must be positive, got {seq_len}")
    keep = [i for i, s in enumerate(samples) if 0 < len(s) <= seq_len]
    dropped = len(samples) - len(keep)
    if samples and not keep:
        raise PackingError(f"every one of {len(samples)} samples is longer than seq_len={seq_len}")
    order = sorted(keep, key=lambda i: -len(samples[i]))
    bins: list[list[int]] = []
    space: list[int] = []
    # best fit: the fullest bin that still has room; keep (free, bin) sorted for bisect.
    free_sorted: list[tuple[int, int]] = []
    for i in order:
        n = len(samples[i])
        k = bisect.bisect_left(free_sorted, (n, -1))
        if k < len(free_sorted):
            free, b = free_sorted.pop(k)
            bins[b].append(i)
            space[b] = free - n
            bisect.insort(free_sorted, (space[b], b))
        else:
            bins.append([i])
            space.append(seq_len - n)
            bisect.insort(free_sorted, (space[-1], len(bins) - 1))
    bins.sort(key=lambda b: min(b))
    packs = [_assemble([samples[i] for i in sorted(b)], seq_len, pad_id, sorted(b)) for b in bins]
    real = sum(p.n_real for p in packs)
    return packs, PackStats(len(packs), len(keep), dropped, real, len(packs) * seq_len)


def pad_samples(samples: Sequence[Sample], batch_size: int, pad_id: int, max_len: int | None = None,
                pad_to: int | None = None) -> tuple[list[Pack], PackStats]:
    """The padded baseline: batches of ``batch_size`` consecutive samples, each padded to the
    longest sample of its batch (or to ``pad_to``), one sample per row. Samples longer than
    ``max_len`` are dropped. Returns one :class:`Pack` per sample and the stats."""
    keep = [i for i, s in enumerate(samples) if 0 < len(s) <= (max_len or 10**12)]
    rows: list[Pack] = []
    for b in range(0, len(keep), batch_size):
        chunk = keep[b : b + batch_size]
        L = pad_to or max(len(samples[i]) for i in chunk)
        rows.extend(_assemble([samples[i]], L, pad_id, (i,)) for i in chunk)
    real = sum(p.n_real for p in rows)
    total = sum(len(p.input_ids) for p in rows)
    return rows, PackStats(len(rows), len(keep), len(samples) - len(keep), real, total)


def block_causal_mask(position_ids: np.ndarray, dtype=None):
    """Explicit additive 4-D attention mask for a packed batch: causal inside each sample,
    nothing across samples (the CPU reference for the position-id route).

    Args:
        position_ids: ``(B, L)`` int positions restarting at 0 per sample.
        dtype: torch float dtype of the mask (default float32).

    Returns:
        torch tensor ``(B, 1, L, L)``: 0 where attention is allowed, ``finfo(dtype).min`` elsewhere.
    """
    import torch

    dtype = dtype or torch.float32
    pos = torch.as_tensor(position_ids)
    seg = torch.cumsum((torch.diff(pos, prepend=pos[:, :1] - 1, dim=-1) != 1).long(), dim=-1)  # (B, L)
    L = pos.shape[-1]
    causal = torch.tril(torch.ones(L, L, dtype=torch.bool))
    same = seg[:, :, None] == seg[:, None, :]  # (B, L, L)
    allowed = same & causal
    m = torch.zeros(allowed.shape, dtype=dtype)
    m.masked_fill_(~allowed, torch.finfo(dtype).min)
    return m[:, None]
