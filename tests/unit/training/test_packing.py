"""Packing: positions restart per sample, nothing is lost, and a packed forward equals the
unpacked forwards (attention never crosses a sample boundary)."""

import numpy as np
import pytest
import torch

from training.packing import PackingError, block_causal_mask, pack_samples, pad_samples
from training.samples import IGNORE_INDEX, Sample
from uniss.lm import uniss_lm


def _samples(lengths, vocab_size=200, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i, n in enumerate(lengths):
        ids = rng.integers(3, vocab_size, n).astype(np.int64)
        lab = ids.copy()
        lab[: n // 2] = IGNORE_INDEX
        out.append(Sample(ids, lab, "asr", str(i)))
    return out


def test_pack_layout_and_stats():
    s = _samples([50, 30, 20, 90, 10, 64, 5, 200])
    packs, st = pack_samples(s, 128, pad_id=0)
    assert st.n_dropped == 1 and st.n_samples == 7  # 200 > 128
    assert all(p.input_ids.shape == (128,) for p in packs)
    assert st.real_tokens == sum(len(x) for x in s if len(x) <= 128)
    # every kept sample appears exactly once, contiguous, with positions 0..n-1
    found = []
    for p in packs:
        starts = np.flatnonzero(p.position_ids == 0)
        bounds = list(starts) + [128]
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            if a >= p.n_real:
                assert (p.labels[a:b] == IGNORE_INDEX).all()  # padding run
                continue
            assert (p.position_ids[a:b] == np.arange(b - a)).all()
            found.append(tuple(p.input_ids[a:b].tolist()))
    assert sorted(found) == sorted(tuple(x.input_ids.tolist()) for x in s if len(x) <= 128)
    assert st.n_packs == 3  # 269 tokens of best-fit decreasing into 128-token packs


def test_useful_share_beats_padding():
    rng = np.random.default_rng(1)
    s = _samples(rng.integers(40, 400, 300).tolist())
    _, packed = pack_samples(s, 2048, pad_id=0)
    _, padded = pad_samples(s, 8, pad_id=0)
    assert packed.useful_share >= 0.98
    assert padded.useful_share < packed.useful_share


def test_bad_arguments():
    with pytest.raises(PackingError):
        pack_samples(_samples([10]), 0, 0)
    with pytest.raises(PackingError, match="longer than"):
        pack_samples(_samples([300, 400]), 128, 0)


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_packed_forward_equals_unpacked(impl):
    torch.manual_seed(0)
    model = uniss_lm("tiny", 200, attn_implementation=impl, hidden_size=64, intermediate_size=128,
                     num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2).eval()
    s = _samples([37, 23, 51, 9], vocab_size=200, seed=2)
    packs, _ = pack_samples(s, 128, pad_id=0)
    assert len(packs) == 1
    p = packs[0]
    ids = torch.from_numpy(p.input_ids)[None]
    pos = torch.from_numpy(p.position_ids)[None]
    with torch.no_grad():
        packed = model(input_ids=ids, position_ids=pos, use_cache=False).logits[0]  # (L, V)
        explicit = model(input_ids=ids, position_ids=pos, attention_mask=block_causal_mask(pos.numpy()), use_cache=False).logits[0]
        naive = model(input_ids=ids, use_cache=False).logits[0]  # one long causal sequence
        starts = np.flatnonzero(p.position_ids == 0)
        for a in starts:
            n = int(np.argmax(p.position_ids[a + 1 :] == 0)) + 1 if (p.position_ids[a + 1 :] == 0).any() else 128 - a
            if a >= p.n_real:
                continue
            single = model(input_ids=ids[:, a : a + n], use_cache=False).logits[0]
            torch.testing.assert_close(packed[a : a + n], single, atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(explicit[a : a + n], single, atol=1e-4, rtol=1e-4)
    # without restarting positions the later samples would see their predecessors: a real difference
    second = int(starts[1])
    assert (naive[second:] - packed[second:]).abs().max() > 1e-2


def test_packed_loss_equals_token_weighted_unpacked_loss():
    torch.manual_seed(0)
    model = uniss_lm("tiny", 200, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2).eval()
    s = _samples([30, 40, 25], seed=5)
    p = pack_samples(s, 100, pad_id=0)[0][0]
    with torch.no_grad():
        lp = model(input_ids=torch.from_numpy(p.input_ids)[None], position_ids=torch.from_numpy(p.position_ids)[None],
                   labels=torch.from_numpy(p.labels)[None], use_cache=False).loss
        tot, n = 0.0, 0
        for x in s:
            k = int((x.labels[1:] != IGNORE_INDEX).sum())
            lx = model(input_ids=torch.from_numpy(x.input_ids)[None], labels=torch.from_numpy(x.labels)[None], use_cache=False).loss
            tot += float(lx) * k
            n += k
    assert abs(float(lp) - tot / n) < 1e-4
