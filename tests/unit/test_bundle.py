"""uniss.bundle: save/load round trip and the consistency checks between its pieces."""

import json
import shutil

import pytest
import torch

from uniss.bundle import BundleError, load_bundle, read_bundle_meta, save_bundle
from uniss.lm import build_speech_tokenizer, expand_vocab, train_text_tokenizer, uniss_lm, vocab_for

CORPUS = ["the cat sat on the mat", "rain fell over the quiet hills", "我们今天在公园里散步"] * 20


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    torch.manual_seed(0)
    text = train_text_tokenizer(CORPUS, vocab_size=300)
    vocab = vocab_for(text, {"speaker": 40, "semantic": 100, "linguistic": 50})
    tok = build_speech_tokenizer(text, vocab)
    model = uniss_lm("tiny", len(text), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                     num_attention_heads=2, num_key_value_heads=1)
    expand_vocab(model, vocab, tokenizer=tok)
    codec = tmp_path_factory.mktemp("codec")
    (codec / "manifest.json").write_text(json.dumps({"backend": "lite", "sizes": {"speaker": 40, "semantic": 100, "linguistic": 50}}))
    return model, tok, vocab, codec


def test_round_trip(tmp_path, parts):
    model, tok, vocab, codec = parts
    b = save_bundle(tmp_path / "b", model=model, tokenizer=tok, vocab=vocab, codec_dir=codec,
                    meta={"phase": 1, "size": "tiny", "data_version": "v1", "shard_md5s": ["abc"], "train_metrics": {"loss_end": 1.5}})
    meta = read_bundle_meta(b)
    assert meta["format"] == 1 and meta["phase"] == 1 and meta["shard_md5s"] == ["abc"] and meta["created_at"]
    assert (b / "codec" / "manifest.json").is_file()
    mb = load_bundle(b, with_codec=False)
    assert mb.vocab == vocab and len(mb.tokenizer) == vocab.total
    ids = torch.arange(12)[None]
    with torch.no_grad():
        torch.testing.assert_close(mb.model(input_ids=ids).logits, model.eval()(input_ids=ids).logits)
    assert mb.model.get_input_embeddings().weight.shape[0] == 576  # 571 ids padded to 64


def test_inconsistent_pieces_are_rejected(tmp_path, parts):
    model, tok, vocab, codec = parts
    b = save_bundle(tmp_path / "b", model=model, tokenizer=tok, vocab=vocab, codec_dir=codec)
    # vocab.json that disagrees with the tokenizer
    bad = tmp_path / "bad1"
    shutil.copytree(b, bad)
    d = json.loads((bad / "vocab.json").read_text())
    d["semantic_size"] += 1
    d.pop("total")
    (bad / "vocab.json").write_text(json.dumps(d))
    with pytest.raises(BundleError, match="tokenizer has"):
        load_bundle(bad, with_codec=False)
    # missing weights file
    bad2 = tmp_path / "bad2"
    shutil.copytree(b, bad2)
    for f in (bad2 / "model").glob("*.safetensors"):
        f.unlink()
    with pytest.raises(BundleError, match="safetensors"):
        load_bundle(bad2, with_codec=False)
    # not a bundle / unknown format
    with pytest.raises(BundleError, match="bundle.json"):
        load_bundle(tmp_path / "nothing")
    (bad2 / "bundle.json").write_text(json.dumps({"format": 99}))
    with pytest.raises(BundleError, match="format"):
        read_bundle_meta(bad2)
    # save-time check: a tokenizer that is not the layout's
    with pytest.raises(BundleError, match="tokenizer has"):
        save_bundle(tmp_path / "x", model=model, tokenizer=tok, vocab=vocab_for(tok, {"speaker": 1, "semantic": 1, "linguistic": 1}))


def test_bundle_data_flags_default_and_reject_non_booleans():
    import pytest

    from uniss.bundle import BundleError, bundle_interleaves_words, bundle_uses_linguistic

    assert bundle_uses_linguistic({}) is True and bundle_interleaves_words({}) is False  # older bundles
    meta = {"config": {"data": {"use_linguistic": False, "interleave_words": True}}}
    assert bundle_uses_linguistic(meta) is False and bundle_interleaves_words(meta) is True
    with pytest.raises(BundleError, match="interleave_words"):
        bundle_interleaves_words({"config": {"data": {"interleave_words": "yes"}}})
