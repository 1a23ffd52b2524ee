"""The model bundle: what training exports and serving/evaluation load (docs/design.md "Model bundle").

Layout::

    BUNDLE/
      bundle.json   {"format": 1, "recipe", "phase", "size", "data_version", "shard_md5s", "codec_fingerprint",
                     "created_at", "git_commit", "train_metrics": {...}}
      model/        HF Qwen2ForCausalLM save_pretrained (safetensors)
      tokenizer/    HF fast tokenizer: text tokenizer + every vocab.speech_token_strings() in order
      vocab.json    SpeechVocab.to_dict()
      codec/        the codec directory (copied: lite) or codec.json pointing at the paper codec dirs

``recipe`` names the prompt formats the model was trained on (:data:`RECIPES`): ``uniss`` (the seven
UniSS formats; bundles written before the field existed are ``uniss``), ``mslm`` (MSLM-S2ST,
``uniss/mslm.py``) or ``s2st-omni`` (S2ST-Omni, ``uniss/omni.py``; adds ``adapter/`` with the
speech adapter's ``config.json`` and ``adapter.safetensors``). Serving reads it with :func:`bundle_recipe`
to pick the decoding program.

Loading checks that the pieces agree: ``vocab.json`` total == tokenizer length, the model's
embedding rows == the total padded to a multiple of 64 (``uniss.lm.padded_rows``), and every
weight key/shape against the model config (``uniss.lm.load_checked_model``).
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uniss.errors import UnissError
from uniss.jsonio import read_json
from uniss.lm import LMError, load_checked_model, padded_rows
from uniss.vocab import SpeechVocab, VocabError

__all__ = ["BUNDLE_FORMAT", "RECIPES", "BundleError", "ModelBundle", "bundle_interleaves_words", "bundle_recipe", "bundle_uses_linguistic", "git_commit", "load_bundle",
           "read_bundle_meta", "save_bundle"]

#: Version of the bundle layout written by :func:`save_bundle`.
BUNDLE_FORMAT = 1
#: Training recipes a bundle can come from (``bundle.json`` ``recipe``; training/config.py ``recipe``):
#: ``uniss`` (paper §3.3 progressive training), ``mslm`` (MSLM-S2ST, arXiv 2403.12408; issue 20) and
#: ``s2st-omni`` (S2ST-Omni, arXiv 2506.11160; issue 20: the bundle also holds ``adapter/``, ``uniss.omni``).
RECIPES = ("uniss", "mslm", "s2st-omni")


class BundleError(UnissError, ValueError):
    """A bundle directory that is missing pieces or whose pieces disagree."""


@dataclass
class ModelBundle:
    """A loaded bundle.

    Attributes:
        model: ``Qwen2ForCausalLM`` in eval mode on ``device`` (float32).
        tokenizer: ``PreTrainedTokenizerFast`` with ``len == vocab.total``.
        vocab: the token layout.
        codec: ``SpeechCodec`` (``uniss.codecs.load_codec``) or ``None`` when not requested.
        meta: the parsed ``bundle.json``.
        path: bundle directory.
    """

    model: Any
    tokenizer: Any
    vocab: SpeechVocab
    codec: Any
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def git_commit(repo: str | Path | None = None) -> str | None:
    """Current git commit of the platform's source tree (``None`` outside a git checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo or Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def save_bundle(
    out_dir: str | Path,
    *,
    model: Any | None = None,
    model_dir: str | Path | None = None,
    tokenizer: Any,
    vocab: SpeechVocab,
    codec_dir: str | Path | None = None,
    codec_ref: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write a bundle (see the module docstring).

    Args:
        out_dir: target directory (created; an existing bundle there is replaced).
        model: a ``Qwen2ForCausalLM`` to ``save_pretrained`` (safetensors) ...
        model_dir: ... or an existing HF model directory to copy.
        tokenizer: the model tokenizer (``len == vocab.total``).
        vocab: the layout.
        codec_dir: codec directory to copy into ``codec/`` (lite codecs).
        codec_ref: instead of copying, a JSON pointer written as ``codec/codec.json`` (paper codec).
        meta: extra ``bundle.json`` fields (``phase``, ``size``, ``data_version``, ``shard_md5s``,
            ``codec_fingerprint``, ``train_metrics`` ...).

    Returns:
        ``Path`` of the bundle.

    Raises:
        BundleError: tokenizer/vocab/model sizes disagree, neither or both of model/model_dir.
    """
    if (model is None) == (model_dir is None):
        raise BundleError("give exactly one of model= or model_dir=")
    if len(tokenizer) != vocab.total:
        raise BundleError(f"tokenizer has {len(tokenizer)} ids but the layout total is {vocab.total}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("model", "tokenizer", "codec"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
    if model is not None:
        rows = model.get_input_embeddings().weight.shape[0]
        if rows not in (vocab.total, padded_rows(vocab.total)):
            raise BundleError(f"model has {rows} embedding rows; layout needs {padded_rows(vocab.total)}")
        model.save_pretrained(out / "model", safe_serialization=True)
    else:
        shutil.copytree(model_dir, out / "model")
    tokenizer.save_pretrained(out / "tokenizer")
    (out / "vocab.json").write_text(vocab.to_json())
    if codec_dir is not None:
        shutil.copytree(codec_dir, out / "codec")
    elif codec_ref is not None:
        (out / "codec").mkdir()
        (out / "codec" / "codec.json").write_text(json.dumps(codec_ref, indent=2))
    doc = {
        "format": BUNDLE_FORMAT,
        "phase": None,
        "size": None,
        "data_version": None,
        "shard_md5s": [],
        "codec_fingerprint": None,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "train_metrics": {},
    }
    doc.update(meta or {})
    (out / "bundle.json").write_text(json.dumps(doc, indent=2, default=str))
    return out


def read_bundle_meta(path: str | Path) -> dict[str, Any]:
    """Parsed ``bundle.json`` of a bundle directory.

    Raises:
        BundleError: not a bundle, unreadable JSON or an unknown format version.
    """
    f = Path(path) / "bundle.json"
    if not f.is_file():
        raise BundleError(f"{path} is not a model bundle (no bundle.json)")
    meta = read_json(f, what="bundle metadata", error=BundleError)
    if meta.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{f}: bundle format {meta.get('format')!r}; this code reads format {BUNDLE_FORMAT}")
    return meta


def bundle_recipe(meta: dict[str, Any]) -> str:
    """The recipe of a bundle from its parsed ``bundle.json``: ``meta["recipe"]``, ``uniss`` when the
    field is absent (bundles written before it existed, released checkpoints).

    Raises:
        BundleError: a recipe outside :data:`RECIPES`.
    """
    recipe = meta.get("recipe") or "uniss"
    if recipe not in RECIPES:
        raise BundleError(f"bundle recipe {recipe!r} is not one of {', '.join(RECIPES)}")
    return str(recipe)


def bundle_uses_linguistic(meta: dict[str, Any]) -> bool:
    """Whether a bundle's model reads the source's linguistic tokens (the default) or, trained with
    ``data.use_linguistic=false`` (the "w/o linguistic tokens" ablation, paper Table 4), its semantic
    tokens in their place (``uniss.prompts.splice_semantic_input``). Read from the last phase's
    ``meta["config"]["data"]["use_linguistic"]``; ``True`` when absent (older bundles, released
    checkpoints).

    Raises:
        BundleError: the field is present but not a boolean.
    """
    return _data_flag(meta, "use_linguistic", True)


def bundle_interleaves_words(meta: dict[str, Any]) -> bool:
    """Whether a bundle's model writes each spoken word before its semantic tokens in the speech
    span (trained with ``data.interleave_words``, ``uniss.prompts.interleave_words``), so decoding
    must allow text ids there. Read from the last phase's ``meta["config"]["data"]["interleave_words"]``;
    ``False`` when absent (older bundles, released checkpoints: the paper's plain speech span).

    Raises:
        BundleError: the field is present but not a boolean.
    """
    return _data_flag(meta, "interleave_words", False)


def _data_flag(meta: dict[str, Any], key: str, default: bool) -> bool:
    """``meta["config"]["data"][key]``, ``default`` when absent; BundleError when not a boolean."""
    value = ((meta.get("config") or {}).get("data") or {}).get(key, default)
    if not isinstance(value, bool):
        raise BundleError(f"bundle config data.{key} must be true or false, got {value!r}")
    return value


def load_bundle_tokenizer(path: str | Path):
    """The bundle's tokenizer and vocab, checked against each other: ``(tokenizer, vocab)``.

    Raises:
        BundleError: missing pieces or size disagreement.
    """
    from transformers import PreTrainedTokenizerFast

    p = Path(path)
    try:
        vocab = SpeechVocab.from_json((p / "vocab.json").read_text())
    except FileNotFoundError:
        raise BundleError(f"{p}: no vocab.json") from None
    except (VocabError, json.JSONDecodeError) as e:
        raise BundleError(f"{p}/vocab.json: {e}") from None
    if not (p / "tokenizer").is_dir():
        raise BundleError(f"{p}: no tokenizer/ directory")
    tok = PreTrainedTokenizerFast.from_pretrained(str(p / "tokenizer"))
    if len(tok) != vocab.total:
        raise BundleError(f"{p}: tokenizer has {len(tok)} ids but vocab.json total is {vocab.total}")
    probe = vocab.token_string(vocab.total - 1)
    if tok.convert_tokens_to_ids(probe) != vocab.total - 1:
        raise BundleError(f"{p}: tokenizer id of {probe} is not {vocab.total - 1}")
    return tok, vocab


def load_bundle(path: str | Path, *, device: str = "cpu", with_codec: bool = True) -> ModelBundle:
    """Load and cross-check a bundle written by :func:`save_bundle`.

    Args:
        path: bundle directory.
        device: torch device for the model (``cpu``, ``cuda`` ...).
        with_codec: also load the codec (``uniss.codecs.load_codec``) from ``codec/``.

    Returns:
        :class:`ModelBundle` (model in eval mode).

    Raises:
        BundleError: missing pieces, tokenizer/vocab/embedding sizes disagree, bad weights
            (keys/shapes), or a codec that cannot be loaded.
    """
    p = Path(path)
    meta = read_bundle_meta(p)
    tok, vocab = load_bundle_tokenizer(p)
    try:
        model = load_checked_model(p / "model")
    except LMError as e:
        raise BundleError(f"{p}: {e}") from None
    rows = model.get_input_embeddings().weight.shape[0]
    if rows not in (vocab.total, padded_rows(vocab.total)):
        raise BundleError(f"{p}: model has {rows} embedding rows; vocab.json needs {padded_rows(vocab.total)}")
    model.to(device).eval()
    codec = None
    if with_codec:
        cdir = p / "codec"
        if not cdir.is_dir():
            raise BundleError(f"{p}: no codec/ directory (load with with_codec=False for the LM only)")
        try:
            from uniss.codecs import load_codec
        except ImportError as e:
            raise BundleError(f"cannot load the bundle's codec: uniss.codecs.load_codec unavailable ({e})") from None
        codec = load_codec(cdir)
    return ModelBundle(model=model, tokenizer=tok, vocab=vocab, codec=codec, meta=meta, path=p)
