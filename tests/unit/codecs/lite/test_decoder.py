"""MelDecoder shapes and its training loop on a tiny synthetic set (CPU, a few seconds)."""

from __future__ import annotations

import numpy as np
import torch

from uniss.codecs.lite import LiteCodecConfig
from uniss.codecs.lite.decoder import MelDecoder, build_decoder, train_decoder


def _centroids(k: int = 8, m: int = 80) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((k, m)).astype(np.float32)  # (K_s, M)


def test_untrained_decoder_returns_centroids():
    cent = _centroids()
    dec = MelDecoder(cent, channels=16, layers=3, kernel=5)
    codes = torch.tensor([[0, 1, 7, 7, 2]])  # (1, 5)
    y = dec(codes, torch.zeros(1, 256))  # (1, 80, 5)
    assert y.shape == (1, 80, 5) and y.dtype == torch.float32
    torch.testing.assert_close(y[0], torch.from_numpy(cent[[0, 1, 7, 7, 2]].T))  # zero-initialised output layer


def test_build_decoder_state_keys():
    dec = build_decoder(_centroids(), LiteCodecConfig.tiny())
    keys = set(dec.state_dict())
    assert {"centroids", "embed.weight", "spk.weight", "out.weight", "blocks.2.conv1.weight"} <= keys
    assert "blocks.3.conv1.weight" not in keys  # tiny: 3 layers
    assert dec.blocks[2].conv1.dilation == (4,)


def test_train_decoder_improves_on_centroids():
    """Targets = centroid + a constant offset the centroids miss: the decoder learns it."""
    rng = np.random.default_rng(0)
    cent = _centroids(k=8, m=8)
    spk = rng.standard_normal((6, 256)).astype(np.float32)  # (n, D_spk)
    codes = [rng.integers(0, 8, 40) for _ in range(6)]  # (T,) each
    mels = [cent[c].T + 0.5 for c in codes]  # (M, T) each
    cfg = LiteCodecConfig.tiny(n_mels=8, train_steps=60, max_train_s=60.0, batch_size=4, crop_frames=16,
                               decoder_channels=16, lr=2e-2)
    dec, m = train_decoder(codes, mels, spk, cent, cfg, np.random.default_rng(0), progress=False)
    assert isinstance(dec, MelDecoder) and not dec.training
    assert m["decoder_steps"] == 60 and set(m) == {"decoder_steps", "decoder_train_l1", "decoder_val_l1", "centroid_val_l1"}
    assert m["decoder_val_l1"] < m["centroid_val_l1"]
