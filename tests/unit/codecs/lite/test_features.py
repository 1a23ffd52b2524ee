"""Whisper window packing and per-position centring statistics (no models needed; the encoder
itself is exercised through the fitted codec in test_codec.py)."""

from __future__ import annotations

import numpy as np

from uniss.codecs.lite import LINGUISTIC_HOP_SAMPLES, N_POSITIONS, WHISPER_WINDOW_SAMPLES, clip_windows, pack_windows, position_means


def test_pack_windows_alignment_and_splitting():
    lengths = [16000 * 3, 1000, 16000 * 29, 16000 * 75, 16000 * 5]
    pieces = pack_windows(lengths)
    # every clip fully covered, in order, by pieces of <= 30 s
    for i, n in enumerate(lengths):
        ps = [p for p in pieces if p.clip == i]
        assert sum(p.length for p in ps) == n
        assert [p.start for p in ps] == list(range(0, n, WHISPER_WINDOW_SAMPLES))
    # offsets on 80 ms boundaries, slots never overlap nor overflow the window
    by_w: dict[int, list] = {}
    for p in pieces:
        assert p.offset % LINGUISTIC_HOP_SAMPLES == 0
        by_w.setdefault(p.window, []).append(p)
    for ps in by_w.values():
        end = 0
        for p in sorted(ps, key=lambda p: p.offset):
            assert p.offset >= end
            end = p.offset + -(-p.length // LINGUISTIC_HOP_SAMPLES) * LINGUISTIC_HOP_SAMPLES
        assert end <= WHISPER_WINDOW_SAMPLES
    # a 3 s clip and a 62.5 ms clip share the first window; 10 min packs into 20 full windows
    assert pieces[0].window == pieces[1].window == 0
    assert pack_windows([16000 * 600])[-1].window == 19




def test_pack_windows_offsets_of_short_clips():
    """Three 1 s clips share window 0 at 0, 1.04 s and 2.08 s (each slot rounded up to 80 ms)."""
    pieces = pack_windows([16000, 16000, 16000])
    assert [(p.window, p.offset) for p in pieces] == [(0, 0), (0, 16640), (0, 33280)]
    assert pack_windows([]) == []


def test_clip_windows_one_piece_per_window_at_offset_zero():
    """The "clip" window: every <= 30 s piece alone in its own window, at offset 0, in order."""
    lengths = [16000 * 3, 1000, 16000 * 75]
    pieces = clip_windows(lengths)
    assert [(p.clip, p.start, p.length, p.window, p.offset) for p in pieces] == [
        (0, 0, 48000, 0, 0), (1, 0, 1000, 1, 0),
        (2, 0, WHISPER_WINDOW_SAMPLES, 2, 0), (2, WHISPER_WINDOW_SAMPLES, WHISPER_WINDOW_SAMPLES, 3, 0),
        (2, 2 * WHISPER_WINDOW_SAMPLES, 16000 * 15, 4, 0)]
    assert clip_windows([]) == []


def test_position_means_shapes_and_fallback():
    """Mean state per observed position; unobserved positions get the global mean."""
    states = [np.array([[1.0, 2.0], [3.0, 4.0]], np.float32), np.array([[5.0, 6.0]], np.float32)]  # (T_l, D)
    positions = [np.array([0, 1]), np.array([1])]
    pm = position_means(states, positions)  # (375, 2)
    assert pm.shape == (N_POSITIONS, 2) and pm.dtype == np.float32
    np.testing.assert_allclose(pm[0], [1.0, 2.0])
    np.testing.assert_allclose(pm[1], [4.0, 5.0])
    np.testing.assert_allclose(pm[2], [3.0, 4.0])  # global mean
    np.testing.assert_allclose(pm[-1], [3.0, 4.0])
