"""The lite codec's decoder network and its training loop.

:class:`MelDecoder` is a small residual 1-D conv network: (semantic codes, speaker embedding
rebuilt from the 32 PQ codes) -> 80-bin log-mel, predicted as a correction of each code's centroid
(the output layer starts at zero, so an untrained decoder returns the centroids). The waveform is
rendered by Griffin-Lim (:func:`uniss.codecs.lite.dsp.griffin_lim`). :func:`train_decoder` fits it
with AdamW on an L1 loss over random crops of log-mel.

This module imports torch at the top; the codec imports it lazily, so that importing
:mod:`uniss.codecs.lite` (configs, packing, DSP) stays light.

Shape legend:
    B      clips in a batch
    T      50 Hz frames (one semantic code each, 320 samples = 20 ms at 16 kHz)
    C      decoder channels (``LiteCodecConfig.decoder_channels``)
    M      mel bins (80 by default)
    K_s    semantic codebook size
    D_spk  speaker embedding width = 256
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

from uniss.codecs.lite.config import LiteCodecConfig
from uniss.codecs.lite.features import SPEAKER_DIM


class ResBlock(nn.Module):
    """Pre-norm residual block: GroupNorm -> dilated conv -> GELU -> 1x1 conv, plus the input.

    Args:
        ch: channels C.
        kernel: conv kernel (frames), odd.
        dilation: conv dilation (frames).
    """

    def __init__(self, ch: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(1, ch)
        self.conv1 = nn.Conv1d(ch, ch, kernel, padding=dilation * (kernel // 2), dilation=dilation)
        self.conv2 = nn.Conv1d(ch, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T)`` -> ``(B, C, T)``."""
        return x + self.conv2(torch.nn.functional.gelu(self.conv1(self.norm(x))))  # (B, C, T)


class MelDecoder(nn.Module):
    """(semantic codes, speaker embedding) -> log-mel, as a correction of the code centroid.

    Args:
        centroids: ``(K_s, M)`` float32 semantic codebook (a buffer, not trained).
        channels / layers / kernel: width, residual blocks (dilations 1, 2, 4, 1, 2, 4 ...),
            conv kernel (frames).
    """

    def __init__(self, centroids: np.ndarray, channels: int, layers: int, kernel: int) -> None:
        super().__init__()
        k, m = centroids.shape
        self.register_buffer("centroids", torch.from_numpy(np.ascontiguousarray(centroids, dtype=np.float32)))  # (K_s, M)
        self.embed = nn.Embedding(k, channels)
        self.cent_in = nn.Conv1d(m, channels, 1)
        self.spk = nn.Linear(SPEAKER_DIM, channels)
        self.blocks = nn.ModuleList([ResBlock(channels, kernel, 2 ** (i % 3)) for i in range(layers)])
        self.out = nn.Conv1d(channels, m, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, codes: torch.Tensor, spk: torch.Tensor) -> torch.Tensor:
        """codes ``(B, T)`` int64, spk ``(B, 256)`` float32 -> ``(B, M, T)`` float32 log-mel."""
        cent = self.centroids[codes].transpose(1, 2)  # (B, M, T)
        x = self.embed(codes).transpose(1, 2) + self.cent_in(cent) + self.spk(spk)[:, :, None]  # (B, C, T)
        for b in self.blocks:
            x = b(x)  # (B, C, T)
        return cent + self.out(x)  # (B, M, T)


def build_decoder(centroids: np.ndarray, cfg: LiteCodecConfig) -> MelDecoder:
    """A :class:`MelDecoder` of the config's size over a ``(K_s, M)`` semantic codebook."""
    return MelDecoder(centroids, cfg.decoder_channels, cfg.decoder_layers, cfg.decoder_kernel)


def train_decoder(
    codes: list[np.ndarray],
    mels: list[np.ndarray],
    speaker: np.ndarray,
    centroids: np.ndarray,
    cfg: LiteCodecConfig,
    rng: np.random.Generator,
    *,
    progress: bool = True,
) -> tuple[MelDecoder, dict[str, Any]]:
    """Train a :class:`MelDecoder` to predict each clip's log-mel from its codes and speaker vector.

    One clip in 20 (at least one) is held out for validation. AdamW (``cfg.lr``, no weight decay,
    50-step linear warm-up), L1 on log-mel over random ``cfg.crop_frames`` crops, gradient norm
    clipped at 1. Stops after ``cfg.train_steps`` steps or ``cfg.max_train_s`` seconds, whichever
    comes first, but never before ``min(50, cfg.train_steps)`` steps.

    Args:
        codes: per clip ``(T_i,)`` int64 semantic codes (50 Hz).
        mels: per clip ``(M, T_i)`` float32 natural-log mel (the targets).
        speaker: ``(n, 256)`` float32 quantized speaker embeddings, one row per clip.
        centroids: ``(K_s, M)`` float32 semantic codebook.
        cfg: sizes and knobs; ``torch.manual_seed(cfg.seed)`` seeds the initial weights.
        rng: draws the validation split and the crops (consumed in that order).
        progress: tqdm bar on stderr.

    Returns:
        (decoder in eval mode, metrics): ``decoder_steps``, ``decoder_train_l1`` (last step),
        ``decoder_val_l1`` and ``centroid_val_l1`` (the centroid lookup it improves on), L1 in
        natural-log mel units.
    """
    from tqdm.auto import tqdm

    n_clips = len(codes)
    n_val = max(1, n_clips // 20)
    order = rng.permutation(n_clips)
    val_idx, tr_idx = order[:n_val], order[n_val:]
    torch.manual_seed(cfg.seed)
    dec = build_decoder(centroids, cfg)
    opt = torch.optim.AdamW(dec.parameters(), lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 50))

    def batch(idx: np.ndarray, crop: int | None) -> tuple[torch.Tensor, ...]:
        """codes ``(B, T)``, speaker ``(B, 256)``, target ``(B, M, T)``, mask ``(B, 1, T)``."""
        L = crop or max(len(codes[i]) for i in idx)
        c = np.zeros((len(idx), L), np.int64)  # (B, T)
        y = np.zeros((len(idx), cfg.n_mels, L), np.float32)  # (B, M, T)
        mask = np.zeros((len(idx), 1, L), np.float32)  # (B, 1, T)
        for b, i in enumerate(idx):
            t = len(codes[i])
            s = int(rng.integers(0, t - L + 1)) if crop and t > L else 0
            n = min(L, t - s)
            c[b, :n], y[b, :, :n], mask[b, :, :n] = codes[i][s : s + n], mels[i][:, s : s + n], 1.0
        return torch.from_numpy(c), torch.from_numpy(speaker[idx]), torch.from_numpy(y), torch.from_numpy(mask)

    def l1(pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Masked mean absolute error of ``(B, M, T)`` log-mels (scalar)."""
        return ((pred - y).abs() * mask).sum() / (mask.sum() * cfg.n_mels)

    def evaluate(idx: np.ndarray) -> tuple[float, float]:
        """(decoder L1, centroid-lookup L1) over clips ``idx``, whole clips, 8 per batch."""
        dec.eval()
        tot, base = 0.0, 0.0
        with torch.inference_mode():
            for j in range(0, len(idx), 8):
                c, s, y, mask = batch(idx[j : j + 8], None)
                tot += float(l1(dec(c, s), y, mask)) * len(c)
                base += float(l1(dec.centroids[c].transpose(1, 2), y, mask)) * len(c)  # centroids: (B, M, T)
        dec.train()
        return tot / len(idx), base / len(idx)

    dec.train()
    bar = tqdm(total=cfg.train_steps, desc="decoder", disable=not progress)
    step, loss_v = 0, float("nan")
    t_train = time.perf_counter()
    min_steps = min(cfg.train_steps, 50)  # the time budget never cuts training below this
    while step < cfg.train_steps and (step < min_steps or time.perf_counter() - t_train < cfg.max_train_s):
        c, s, y, mask = batch(rng.choice(tr_idx, size=cfg.batch_size, replace=len(tr_idx) < cfg.batch_size), cfg.crop_frames)
        loss = l1(dec(c, s), y, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(dec.parameters(), 1.0)
        opt.step()
        sched.step()
        step += 1
        loss_v = loss.item()
        bar.update(1)
        if step % 20 == 0:
            bar.set_postfix(l1=f"{loss_v:.3f}")
    bar.close()
    val_l1, val_base = evaluate(val_idx)
    dec.eval()
    metrics = {
        "decoder_steps": step,
        "decoder_train_l1": loss_v,
        "decoder_val_l1": val_l1,
        "centroid_val_l1": val_base,
    }
    return dec, metrics
