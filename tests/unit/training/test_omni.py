"""S2ST-Omni recipe samples and adapter (training/omni.py, uniss/omni.py): the exact ids, loss mask,
placeholder positions and features of one sample on the released layout; the adapter's shapes,
dtypes, splicing and checked save/load; pack features follow the packs' members."""

import numpy as np
import pytest
import torch

from training.omni import OmniLM, build_omni_sample, build_omni_samples, pack_features, row_features
from training.packing import pack_samples
from training.samples import IGNORE_INDEX, SampleError
from uniss.omni import (
    FEATURE_DIM,
    AdapterConfig,
    OmniError,
    SpeechAdapter,
    build_omni_prompt,
    load_adapter,
    save_adapter,
    splice_adapter,
    stack_frames,
)
from uniss.prompts import PromptError
from uniss.vocab import SpeechVocab

PAPER = SpeechVocab.paper()
M = IGNORE_INDEX
# Ids of the released layout (ARCHITECTURE.md "Token layout"): control = 180372 + position;
# audio_placeholder_1 is position 31 (dynamic_mode 30, placeholder_1..3 31-33, streaming_mode 34 = 180406).
TASK_S2TT, CMN, ENG, WRITE, START_C, END_C, PH = 180380, 180372, 180373, 180396, 180386, 180390, 180403
IM_END = 151645

ROW = {"id": "r0", "src_lang": "en", "tgt_lang": "zh", "src_text": "hi", "tgt_text": "ab", "src_audio": b"x", "tgt_audio": b"y"}


def _chars(s: str) -> list[int]:
    """A fixed text tokenizer for the paper layout: one id per character (ASCII code), ``<|im_end|>`` -> 151645."""
    if s == "<|im_end|>":
        return [IM_END]
    return [ord(c) for c in s]


def test_placeholder_is_the_layout_control_token():
    assert PAPER.token_id("<|audio_placeholder_1|>") == PH == 180372 + 31
    assert PAPER.token_id("<|streaming_mode|>") == 180406  # the layout's last id is unchanged


def test_sample_exact_ids_loss_mask_and_placeholders():
    states = np.arange(5 * FEATURE_DIM, dtype=np.float32).reshape(5, FEATURE_DIM)  # T_f = 5 at 12.5 Hz
    s = build_omni_sample(PAPER, _chars, ROW, states, side="src", frame_stack=2)
    prompt = [TASK_S2TT, CMN, PH, PH, PH, WRITE, CMN, START_C]  # P = ceil(5 / 2) = 3
    cont = [ord("a"), ord("b"), END_C, IM_END]
    assert s.input_ids.tolist() == prompt + cont
    assert s.labels.tolist() == [M] * 8 + cont
    assert s.input_ids.dtype == np.int64 and s.labels.dtype == np.int64
    assert np.flatnonzero(s.input_ids == PH).tolist() == [2, 3, 4]
    assert s.task == "omni_s2tt" and s.row_id == "r0" and s.n_loss_tokens == 4
    # frames: states 0-1, 2-3, 4 + zero padding, concatenated
    assert s.features.shape == (3, 2 * FEATURE_DIM) and s.features.dtype == np.float32
    assert s.features[1, FEATURE_DIM] == states[3, 0] and s.features[2, FEATURE_DIM:].sum() == 0.0
    # the reverse direction: target speech -> source text, English target token
    r = build_omni_sample(PAPER, _chars, ROW, states[:2], side="tgt", frame_stack=2)
    assert r.input_ids.tolist() == [TASK_S2TT, ENG, PH, WRITE, ENG, START_C, ord("h"), ord("i"), END_C, IM_END]


def test_sample_rejects_bad_input():
    with pytest.raises(OmniError):
        build_omni_sample(PAPER, _chars, ROW, np.zeros((3, 80), np.float32))
    with pytest.raises(OmniError):
        build_omni_sample(PAPER, _chars, ROW, np.zeros((0, FEATURE_DIM), np.float32))
    with pytest.raises(SampleError):
        build_omni_sample(PAPER, _chars, {**ROW, "tgt_text": " "}, np.zeros((3, FEATURE_DIM), np.float32))
    with pytest.raises(SampleError):
        build_omni_sample(PAPER, _chars, ROW, np.zeros((3, FEATURE_DIM), np.float32), side="mid")
    with pytest.raises(PromptError):
        build_omni_prompt(PAPER, tgt="fr", n_frames=2)
    with pytest.raises(SampleError):  # a row whose speech has no features
        build_omni_samples(PAPER, _chars, [ROW], {("r0", "src"): np.zeros((2, FEATURE_DIM), np.float32)})


def test_stack_frames_shapes():
    x = np.random.default_rng(0).normal(size=(7, 4)).astype(np.float32)
    y = stack_frames(x, 3)
    assert y.shape == (3, 12) and np.array_equal(y[0], x[:3].reshape(-1)) and np.array_equal(y[2, :4], x[6])
    assert stack_frames(x, 1).shape == (7, 4)


def test_adapter_shapes_dtypes_and_fixed_value():
    torch.manual_seed(0)
    a = SpeechAdapter(AdapterConfig(out_dim=16, frame_stack=2, hidden_dim=8))
    linears = [m for m in a.net if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 4 and linears[0].in_features == 2 * FEATURE_DIM and linears[-1].out_features == 16  # paper §2.2: 4 layers
    acts = [m for m in a.net if isinstance(m, torch.nn.LeakyReLU)]
    assert len(acts) == 3 and all(m.negative_slope == 0.1 for m in acts)
    frames = torch.from_numpy(stack_frames(np.ones((5, FEATURE_DIM), np.float32), 2)).half()  # float16 as in the packs
    out = a(frames)
    assert out.shape == (3, 16) and out.dtype == torch.float32
    assert torch.allclose(out[0], out[1]) and not torch.allclose(out[1], out[2])  # last frame is half zero padding
    with pytest.raises(OmniError):
        a(torch.zeros(3, FEATURE_DIM))


def test_splice_replaces_only_placeholders_in_row_major_order():
    ids = torch.tensor([[1, PH, PH, 2], [PH, 3, 4, 5]])
    emb = torch.zeros(2, 4, 3)
    adapted = torch.arange(9, dtype=torch.float32).reshape(3, 3) + 1
    out = splice_adapter(emb, ids, PH, adapted)
    assert torch.equal(out[0, 1], adapted[0]) and torch.equal(out[0, 2], adapted[1]) and torch.equal(out[1, 0], adapted[2])
    assert out[0, 0].abs().sum() == 0 and out[1, 1:].abs().sum() == 0
    with pytest.raises(OmniError):
        splice_adapter(emb, ids, PH, adapted[:2])


def test_adapter_save_load_checks_keys(tmp_path):
    torch.manual_seed(1)
    a = SpeechAdapter(AdapterConfig(out_dim=16, frame_stack=2))
    save_adapter(a, tmp_path / "ad")
    b = load_adapter(tmp_path / "ad")
    x = torch.randn(2, 2 * FEATURE_DIM)
    assert torch.equal(a(x), b(x))
    (tmp_path / "ad" / "config.json").write_text('{"out_dim": 32, "frame_stack": 2}')
    with pytest.raises(OmniError, match="do not match"):
        load_adapter(tmp_path / "ad")
    with pytest.raises(OmniError):
        load_adapter(tmp_path / "missing")


def test_pack_features_follow_members_and_train_signal(toks):
    """Packed samples keep their frames in placeholder order, and :class:`OmniLM` trains the adapter
    only when the LM is frozen (stage 1)."""
    from uniss.lm import build_lm, expand_vocab

    text, tok, vocab = toks
    enc = lambda s: tok.encode(s, add_special_tokens=False)  # noqa: E731
    rows = [{**ROW, "id": f"r{i}", "tgt_text": t} for i, t in enumerate(["the cat", "a mat sat", "rain"])]
    rng = np.random.default_rng(0)
    feats = {(r["id"], s): rng.normal(size=(3 + i, FEATURE_DIM)).astype(np.float32) for i, r in enumerate(rows) for s in ("src", "tgt")}
    samples = build_omni_samples(vocab, enc, rows, feats, frame_stack=2, seed=0)
    assert len(samples) == 6
    packs, _ = pack_samples(samples, 64, vocab.pad_id)
    f, off = pack_features(packs, samples)
    ph = vocab.token_id("<|audio_placeholder_1|>")
    for i, p in enumerate(packs):
        assert off[i + 1] - off[i] == int((p.input_ids == ph).sum())
        assert np.array_equal(f[off[i]:off[i + 1]], np.concatenate([samples[j].features for j in p.members]).astype(np.float16))
    torch.manual_seed(0)
    lm = build_lm("tiny", len(text))
    expand_vocab(lm, vocab, tokenizer=tok)
    m = OmniLM(lm, SpeechAdapter(AdapterConfig(out_dim=lm.config.hidden_size)), ph, train_lm=False)
    assert all(not p.requires_grad for p in m.lm.parameters()) and all(p.requires_grad for p in m.adapter.parameters())
    out = m(input_ids=torch.from_numpy(packs[0].input_ids)[None], features=torch.from_numpy(f[off[0]:off[1]].astype(np.float32)),
            position_ids=torch.from_numpy(packs[0].position_ids)[None], labels=torch.from_numpy(packs[0].labels)[None])
    out.loss.backward()
    assert float(out.loss.detach()) > 0 and m.adapter.net[0].weight.grad.abs().sum() > 0


def test_row_features_cache_by_audio_content(tmp_path):
    calls = []

    def enc(wavs):
        calls.append(len(wavs))
        return [np.full((max(1, round(12.5 * len(w) / 16000)), FEATURE_DIM), float(len(w)), np.float32) for w in wavs]

    from uniss.audio import to_flac_bytes

    a, b = to_flac_bytes(np.zeros(8000, np.float32)), to_flac_bytes(np.ones(16000, np.float32) * 0.1)
    rows = [{"id": "r0", "src_audio": a, "tgt_audio": b}, {"id": "r1", "src_audio": b, "tgt_audio": a}, {"id": "t", "kind": "text"}]
    f = row_features(rows, cache_dir=tmp_path, encoder=enc, encoder_id="fake")
    assert calls == [2]  # two distinct clips, encoded once each
    assert f[("r0", "src")].shape == (6, FEATURE_DIM) and f[("r1", "src")].shape == (12, FEATURE_DIM)
    assert len(list((tmp_path / "fake").glob("*.npy"))) == 2
    g = row_features(rows, cache_dir=tmp_path, encoder=enc, encoder_id="fake")
    assert calls == [2] and np.array_equal(g[("r1", "tgt")], f[("r0", "src")])
    with pytest.raises(SampleError):
        row_features([{"id": "r2", "src_audio": b""}], both_sides=False, encoder=enc)


def test_start_adapter_new_or_from_the_init_bundle(tmp_path, toks):
    """Stage 1 creates the adapter from ``cfg.omni`` and the LM width; stage 2 continues the init
    bundle's and refuses one whose shape the config does not name, or a missing one."""
    from training.config import load_config
    from training.omni import start_adapter
    from training.workdir import TrainError
    from uniss.lm import build_lm

    text, _, _ = toks
    lm = build_lm("tiny", len(text))
    s1 = load_config("tiny_omni_stage1")
    d = start_adapter(s1, lm, None, tmp_path / "start1")
    a = load_adapter(d)
    assert (a.cfg.out_dim, a.cfg.frame_stack, a.cfg.n_layers) == (lm.config.hidden_size, 2, 4)
    (tmp_path / "b1").mkdir()
    save_adapter(a, tmp_path / "b1" / "adapter")
    s2 = load_config("tiny_omni_stage2")
    b = load_adapter(start_adapter(s2, lm, tmp_path / "b1", tmp_path / "start2"))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    with pytest.raises(TrainError, match="frame_stack"):
        start_adapter(load_config("tiny_omni_stage2", ["omni.frame_stack=3"]), lm, tmp_path / "b1", tmp_path / "s3")
    with pytest.raises(TrainError, match="stage-1 bundle"):
        start_adapter(s2, lm, None, tmp_path / "s4")
