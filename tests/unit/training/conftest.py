"""Shared tiny fixtures for the training tests: a corpus BPE, a lite layout and synthetic rows."""

from __future__ import annotations

import pytest

from training.synthetic import make_synthetic_dataset
from uniss.lm import build_speech_tokenizer, train_text_tokenizer, vocab_for

SIZES = {"speaker": 64, "semantic": 128, "linguistic": 64}


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A validated synthetic dataset directory (24 train rows, codec sizes 64/128/64)."""
    return make_synthetic_dataset(tmp_path_factory.mktemp("data") / "ds", 24, sizes=SIZES)


@pytest.fixture(scope="session")
def rows(tiny_data):
    from training.data import load_rows

    return load_rows(tiny_data, split="train", subset="general")


@pytest.fixture(scope="session")
def toks(rows):
    """(text tokenizer, model tokenizer, vocab) for the synthetic corpus."""
    text = train_text_tokenizer([r[k] for r in rows for k in ("src_text", "tgt_text")], vocab_size=300)
    vocab = vocab_for(text, SIZES, layout="lite")
    return text, build_speech_tokenizer(text, vocab), vocab
