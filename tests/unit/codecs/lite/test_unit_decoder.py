"""Regularisers of the v3 unit decoder (issue 16): dropout only while training, unit-noise augmentation."""

import itertools

import numpy as np
import pytest
import torch

from uniss.codecs.lite import LiteCodecConfig
from uniss.codecs.lite.unit_decoder import build_unit_decoder, train_unit_decoder


def _data(n=6, t=60, k=16, seed=0):
    rng = np.random.default_rng(seed)
    codes = [rng.integers(0, k, t).astype(np.int64) for _ in range(n)]
    mels = [np.repeat(np.eye(80, dtype=np.float32)[c % 80], 2, axis=0)[: int(np.ceil(1.6 * t))] for c in codes]
    return codes, mels, rng.standard_normal((n, 256)).astype(np.float32)


def test_dropout_acts_in_training_only():
    cfg = LiteCodecConfig.tiny_v3(decoder_dropout=0.5)
    dec = build_unit_decoder(16, cfg)
    for p in dec.parameters():  # non-zero FiLM so every block contributes
        torch.nn.init.normal_(p, std=0.1)
    codes, spk = torch.randint(0, 16, (2, 20)), torch.randn(2, 256)
    dec.eval()
    with torch.no_grad():
        assert torch.equal(dec(codes, spk), dec(codes, spk))
        dec.train()
        assert not torch.equal(dec(codes, spk), dec(codes, spk))


def test_unit_noise_changes_training_but_not_the_budget_rules():
    codes, mels, spk = _data()
    cfgs = [LiteCodecConfig.tiny_v3(train_steps=25, decoder_cpu_s=0.0, decoder_unit_noise=u) for u in (0.0, 0.3)]
    runs = [train_unit_decoder(codes, mels, spk, 16, c, np.random.default_rng(1), progress=False) for c in cfgs]
    assert [m["decoder_steps"] for _, m in runs] == [20, 20]  # min(20, train_steps) even with no budget
    w0, w1 = (r[0].embed.weight.detach() for r in runs)
    assert not torch.allclose(w0, w1)  # the noisy inputs changed what was learnt
    for d, _ in runs:
        assert not d.training


def test_a_step_budget_gives_the_same_decoder_whatever_the_cpu_time(monkeypatch):
    """Where ``train_steps`` binds, the stop and the learning-rate schedule follow the step count, so
    the fit does not depend on the machine's load (the clock re-plans the schedule only at the
    calibration step, and only when the median step says the CPU budget would end first); where the
    CPU budget binds it still stops early. Under the loaded clock below (7 CPU-s a step, 1,000 CPU-s
    cap) the schedule of before (``max(step / train_steps, cpu_s / budget)`` at every step) gave
    another learning rate from the first step on."""
    import uniss.codecs.lite.unit_decoder as ud

    codes, mels, spk = _data()
    cfg = LiteCodecConfig.tiny_v3(train_steps=30, decoder_cpu_s=1000.0)
    quiet = train_unit_decoder(codes, mels, spk, 16, cfg, np.random.default_rng(1), progress=False)

    def run(clock, **over):
        ticks = iter(clock)
        monkeypatch.setattr(ud.time, "process_time", lambda: float(next(ticks)))
        return train_unit_decoder(codes, mels, spk, 16, LiteCodecConfig.tiny_v3(**{"train_steps": 30, **over}),
                                  np.random.default_rng(1), progress=False)

    # a loaded machine: 7 CPU-s a step, and a slow first step (start-up) of 300 CPU-s
    loaded = run(itertools.chain([0], itertools.count(300, 7)), decoder_cpu_s=1000.0)
    assert quiet[1]["decoder_steps"] == loaded[1]["decoder_steps"] == 30
    for a, b in zip(quiet[0].state_dict().values(), loaded[0].state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # 1 CPU-s a step at calibration (30 steps fit the plan), then 1,000 CPU-s: the cap binds first
    capped = run(itertools.chain(range(25), itertools.count(1000)), decoder_cpu_s=100.0)
    assert 20 <= capped[1]["decoder_steps"] < 30
    # 10 CPU-s a step: the plan shrinks to floor(250 / 10) = 25 steps, and the schedule with it
    replanned = run(itertools.count(0, 10), decoder_cpu_s=250.0)
    assert replanned[1]["decoder_steps"] == 25
    assert not all(torch.equal(a, b) for a, b in zip(quiet[0].state_dict().values(),
                                                      replanned[0].state_dict().values(), strict=True))


def test_speaker_swap_conditions_on_the_partner_in_training_only():
    """With ``decoder_speaker_swap`` a clip is sometimes rendered from its pair partner's speaker
    vector (another fit); at 0, or without partners, the fit is the one of before."""
    codes, mels, spk = _data()
    partners = np.array([1, 0, 3, 2, -1, -1])

    def fit(swap, part):
        cfg = LiteCodecConfig.tiny_v3(train_steps=25, decoder_cpu_s=1e6, decoder_speaker_swap=swap)
        return train_unit_decoder(codes, mels, spk, 16, cfg, np.random.default_rng(1), partners=part, progress=False)

    plain, zero, swapped = fit(0.0, None), fit(0.0, partners), fit(0.5, partners)
    for a, b in zip(plain[0].state_dict().values(), zero[0].state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not torch.allclose(plain[0].embed.weight, swapped[0].embed.weight)


def test_fit_rejects_bad_partners():
    from uniss.codecs.base import CodecError
    from uniss.codecs.lite import fit_lite_codec

    wavs = [np.random.default_rng(i).standard_normal(8000).astype(np.float32) * 0.1 for i in range(3)]
    for bad in ([1, 0], [1, 0, 3], [1, 0, -2]):
        with pytest.raises(CodecError, match="partners"):
            fit_lite_codec(wavs, LiteCodecConfig.tiny_v3(), partners=bad, progress=False)
