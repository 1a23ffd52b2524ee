"""Unit decoder of lite codec v3: 50 Hz semantic units + speaker vector -> vocoder mel frames.

:class:`UnitDecoder`: unit embedding (+ speaker projection) -> residual dilated conv blocks at 50 Hz
with FiLM from the speaker vector in every block (feature-wise affine modulation, Perez et al. 2018)
-> linear-interpolation upsampling to the vocoder frame rate (50 -> 80 Hz for MB-MelGAN) -> more
FiLM blocks -> 80 normalised log10 mel bins (:mod:`uniss.codecs.lite.vocoder`). Output length is
fixed by the unit count: ``T_v = ceil(1.6 T_s)``.

:func:`train_unit_decoder`: L1 on the normalised mel of the same clip, random crops of a multiple of
5 units (= whole vocoder frames), AdamW with warm-up and a cosine decay over the budget. The budget
is CPU time (``time.process_time``, all threads of the process), not wall time: on a shared, loaded
machine wall time says nothing about the work done (prototype, /work/scratch/codec/RESULTS.md).

Imports torch at the top; the codec imports this module lazily.

Shape legend:
    B      clips in a batch
    T_s    50 Hz units
    T_v    vocoder frames = ceil(1.6 T_s) (80 Hz)
    C      channels (``LiteCodecConfig.unit_decoder_channels``)
    M      mel bins = 80
    D_spk  speaker vector width = 256
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from uniss.codecs.lite.config import LiteCodecConfig
from uniss.codecs.lite.features import SPEAKER_DIM
from uniss.codecs.lite.vocoder import VOCODER_N_MELS, frames_per_unit, units_to_frames


class FiLMBlock(nn.Module):
    """``x + conv1x1(gelu(conv_k(norm(x) * (1 + g) + b)))`` with ``(g, b)`` from the speaker vector
    (the FiLM layer starts at zero, i.e. identity modulation).

    Args:
        ch: channels; spk_dim: speaker vector width; kernel: conv kernel (odd); dilation: frames.
    """

    def __init__(self, ch: int, spk_dim: int, kernel: int, dilation: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = float(dropout)
        self.norm = nn.GroupNorm(1, ch)
        self.film = nn.Linear(spk_dim, 2 * ch)
        self.conv = nn.Conv1d(ch, ch, kernel, padding=dilation * (kernel // 2), dilation=dilation)
        self.proj = nn.Conv1d(ch, ch, 1)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, spk: torch.Tensor) -> torch.Tensor:
        """``(B, C, T)``, ``(B, D_spk)`` -> ``(B, C, T)``."""
        g, b = self.film(spk)[:, :, None].chunk(2, dim=1)  # (B, C, 1) each
        h = F.gelu(self.conv(self.norm(x) * (1 + g) + b))
        return x + self.proj(F.dropout(h, self.dropout, self.training))


class UnitDecoder(nn.Module):
    """codes ``(B, T_s)`` int64 + speaker ``(B, 256)`` float32 -> ``(B, T_v, 80)`` float32.

    Args:
        n_units: K_s; channels: C; blocks_in / blocks_out: FiLM blocks at 50 Hz / at 80 Hz
            (dilations 1, 2, 4, ... / 1, 2, ...); kernel: conv kernel (frames); dropout: inside
            every block, training only; vocoder: whose frame rate the output has
            (:func:`~uniss.codecs.lite.vocoder.units_to_frames`).
    """

    def __init__(self, n_units: int, channels: int = 192, blocks_in: int = 4, blocks_out: int = 2, kernel: int = 5,
                 dropout: float = 0.0, vocoder: str = "mbmelgan") -> None:
        super().__init__()
        self.vocoder = vocoder
        self.embed = nn.Embedding(n_units, channels)
        self.spk_in = nn.Linear(SPEAKER_DIM, channels)
        self.pre = nn.ModuleList([FiLMBlock(channels, SPEAKER_DIM, kernel, 2 ** (i % 3), dropout) for i in range(blocks_in)])
        self.post = nn.ModuleList([FiLMBlock(channels, SPEAKER_DIM, kernel, 2 ** (i % 2), dropout) for i in range(blocks_out)])
        self.out = nn.Conv1d(channels, VOCODER_N_MELS, 1)

    def forward(self, codes: torch.Tensor, spk: torch.Tensor) -> torch.Tensor:
        """codes ``(B, T_s)``, spk ``(B, 256)`` -> ``(B, units_to_frames(T_s, vocoder), 80)`` (1.6 T_s for MB-MelGAN)."""
        x = self.embed(codes).transpose(1, 2) + self.spk_in(spk)[:, :, None]  # (B, C, T_s)
        for blk in self.pre:
            x = blk(x, spk)
        x = F.interpolate(x, size=units_to_frames(codes.shape[1], self.vocoder), mode="linear", align_corners=False)  # (B, C, T_v)
        for blk in self.post:
            x = blk(x, spk)
        return self.out(x).transpose(1, 2)  # (B, T_v, M)


def build_unit_decoder(n_units: int, cfg: LiteCodecConfig) -> UnitDecoder:
    """A :class:`UnitDecoder` of the config's size."""
    return UnitDecoder(n_units, cfg.unit_decoder_channels, cfg.unit_decoder_blocks_in, cfg.unit_decoder_blocks_out,
                       cfg.decoder_kernel, cfg.decoder_dropout, cfg.vocoder)


def train_unit_decoder(
    codes: list[np.ndarray],
    mels: list[np.ndarray],
    speaker: np.ndarray,
    n_units: int,
    cfg: LiteCodecConfig,
    rng: np.random.Generator,
    *,
    partners: np.ndarray | None = None,
    progress: bool = True,
) -> tuple[UnitDecoder, dict[str, Any]]:
    """Fit a :class:`UnitDecoder` on (codes, speaker, normalised mel) triples.

    Stops after ``cfg.train_steps`` steps or ``cfg.decoder_cpu_s`` CPU-seconds, whichever comes
    first, but never before ``min(20, cfg.train_steps)`` steps. The learning rate (50-step warm-up,
    then cosine to 10 %) follows ``step / planned``, where ``planned`` is ``train_steps`` unless the
    calibration at step ``min(20, train_steps)`` re-plans it once: the median CPU-seconds of the
    steps so far, the first left out (it carries torch's start-up), times ``train_steps`` is
    compared with ``decoder_cpu_s``, and if the CPU budget would end first ``planned`` becomes
    ``floor(decoder_cpu_s / median)`` (never below the calibration step). Nothing else in the
    schedule reads the clock, so where the step budget binds with room (``demo-v3``: 2,400 steps of
    ~0.26 CPU-s, a 1,200 CPU-s cap) the fit is bit-identical on a quiet and a loaded machine (same
    seeds, same clips -> same weights; checked 2026-12-04 on 60 demo clips with and without a CPU
    burner). Before, the schedule followed ``max(step / train_steps, cpu_s / decoder_cpu_s)`` at
    every step; in the first steps the CPU fraction was the larger, so the learning rate, and hence
    the weights, depended on the load: two cold demos with identical codebooks got decoders whose
    codec topline Speech-BLEU differed by 9 / 7 BLEU (30.3 / 17.0 and 39.7 / 24.4); on 60 demo clips
    the old schedule gave other weights after 60 steps with a CPU burner than without. Where the CPU
    budget binds, a loaded machine trains fewer steps: the cap is checked after every step from the
    calibration step on. One clip in 20 (at least one) is held
    out for the validation L1. Regularisers (config): ``decoder_dropout`` in every block and
    ``decoder_unit_noise`` (that share of input units replaced by random units each step).

    Args:
        codes: per clip ``(T_s_i,)`` int64 units in ``[0, n_units)``.
        mels: per clip ``(ceil(1.6 T_s_i), 80)`` float32 normalised log10 mel (targets).
        speaker: ``(n, 256)`` float32 quantised speaker vectors.
        n_units: K_s.
        cfg: sizes and knobs (``torch.manual_seed(cfg.seed)`` seeds the weights).
        rng: draws the validation split and the crops.
        partners: ``(n,)`` int64 index of each clip's pair partner (-1: none); with
            ``decoder_speaker_swap > 0`` a training clip is conditioned on its partner's speaker
            vector with that probability (validation always on its own).
        progress: tqdm bar.

    Returns:
        (decoder in eval mode, metrics): ``decoder_steps``, ``decoder_train_l1`` (mean of the last
        50 steps), ``decoder_val_l1``, ``decoder_cpu_s``, ``decoder_wall_s``, ``decoder_params``.
    """
    from tqdm.auto import tqdm

    n = len(codes)
    order = rng.permutation(n)
    n_val = max(1, n // 20) if n > 1 else 0
    val_idx, tr_idx = order[:n_val], order[n_val:]
    torch.manual_seed(cfg.seed)
    dec = build_unit_decoder(n_units, cfg)
    opt = torch.optim.AdamW(dec.parameters(), lr=cfg.lr, weight_decay=0.01)
    crop = max(5, cfg.crop_frames // 5 * 5)  # units; a multiple of 5 units = 8 whole vocoder frames
    spk_t = torch.from_numpy(np.ascontiguousarray(speaker, dtype=np.float32))

    def batch(idx: np.ndarray, crop_u: int | None) -> tuple[torch.Tensor, ...]:
        """codes ``(B, L)``, speaker ``(B, 256)``, target ``(B, T_v, 80)``, mask ``(B, T_v, 1)``."""
        L = crop_u or max(len(codes[i]) for i in idx)
        tv = units_to_frames(L, cfg.vocoder)
        c = np.zeros((len(idx), L), np.int64)
        y = np.zeros((len(idx), tv, VOCODER_N_MELS), np.float32)
        mask = np.zeros((len(idx), tv, 1), np.float32)
        for b, i in enumerate(idx):
            t = len(codes[i])
            s = int(rng.integers(0, t - L + 1)) // 5 * 5 if crop_u and t > L else 0
            m = min(L, t - s)
            c[b, :m] = codes[i][s : s + m]
            f0 = round(s * frames_per_unit(cfg.vocoder))
            seg = mels[i][f0 : f0 + min(units_to_frames(m, cfg.vocoder), tv)]
            y[b, : len(seg)], mask[b, : len(seg)] = seg, 1.0
        who = idx
        if crop_u and partners is not None and cfg.decoder_speaker_swap > 0:  # training batches only
            swap = (partners[idx] >= 0) & (rng.random(len(idx)) < cfg.decoder_speaker_swap)
            who = np.where(swap, partners[idx], idx)
        return torch.from_numpy(c), spk_t[who], torch.from_numpy(y), torch.from_numpy(mask)

    def l1(pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return ((pred - y).abs() * mask).sum() / (mask.sum() * VOCODER_N_MELS)

    hist: list[float] = []
    step = 0
    c0, w0 = time.process_time(), time.perf_counter()
    budget = float(cfg.decoder_cpu_s)
    min_steps = min(cfg.train_steps, 20)
    bar = tqdm(total=cfg.train_steps, desc="unit decoder", disable=not progress)
    dec.train()
    planned = cfg.train_steps  # the schedule's length; re-planned at most once, at the calibration step
    deltas: list[float] = []  # CPU-seconds of each step
    last = c0
    while step < planned:
        idx = rng.choice(tr_idx, size=cfg.batch_size, replace=len(tr_idx) < cfg.batch_size)
        c, s, y, mask = batch(idx, crop)
        if cfg.decoder_unit_noise > 0:  # augmentation: some units replaced by random ones
            swap = torch.from_numpy(rng.random(c.shape) < cfg.decoder_unit_noise)
            c = torch.where(swap, torch.from_numpy(rng.integers(0, n_units, c.shape)), c)
        loss = l1(dec(c, s), y, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(dec.parameters(), 1.0)
        frac = min(1.0, step / planned)
        for g in opt.param_groups:  # 50-step warm-up, then cosine to 10 % over the planned steps
            g["lr"] = cfg.lr * min(1.0, (step + 1) / 50) * (0.1 + 0.45 * (1 + math.cos(math.pi * frac)))
        opt.step()
        step += 1
        hist.append(loss.item())
        bar.update(1)
        if step % 20 == 0:
            bar.set_postfix(l1=f"{np.mean(hist[-20:]):.3f}")
        now = time.process_time()  # the one clock read of a step
        deltas.append(now - last)
        last = now
        if step == min_steps and step < planned:  # calibration: the median step, start-up excluded
            per_step = float(np.median(deltas[1:] or deltas))
            if per_step * planned > budget:
                planned = max(step, int(budget / per_step))  # per_step > 0 here, as budget >= 0
        if step >= min_steps and now - c0 >= budget:  # the CPU cap, whatever the plan
            break
    bar.close()
    dec.eval()
    val = float("nan")
    if len(val_idx):
        tot = 0.0
        with torch.inference_mode():
            for j in range(0, len(val_idx), 8):
                c, s, y, mask = batch(val_idx[j : j + 8], None)
                tot += float(l1(dec(c, s), y, mask)) * len(c)
        val = tot / len(val_idx)
    return dec, {
        "decoder_steps": step,
        "decoder_train_l1": float(np.mean(hist[-50:])) if hist else float("nan"),
        "decoder_val_l1": val,
        "decoder_cpu_s": round(time.process_time() - c0, 2),
        "decoder_wall_s": round(time.perf_counter() - w0, 2),
        "decoder_params": int(sum(p.numel() for p in dec.parameters())),
    }
