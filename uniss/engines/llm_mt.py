"""LLM text translation on a local Qwen2.5 instruct checkpoint through ``transformers`` (paper App. E.2).

The paper translated UniST transcripts with Qwen2.5-72B-Instruct and the App. E.2 prompt; the
largest Qwen2.5 instruct model that installs offline here is Qwen2.5-Coder-0.5B-Instruct
(``python scripts/install_models.py --only qwen2.5-0.5b``; FACTS.md: ZH->EN good, EN->ZH mediocre,
mixed-script output possible -> dropped by :func:`uniss.engines.mt.clean_translation`).

:class:`LocalChatMT` is an :class:`uniss.engines.mt.MTEngine`: the App. E.2 user message
(:func:`uniss.engines.mt.translation_prompt`) in the model's chat template, greedy decoding,
batches left-padded, raw replies returned (clean-up stays with the caller, as for every MT engine),
every reply cached per ``(text, src, tgt)`` in memory and optionally on disk.

Shape legend: B = texts in a batch, T = prompt tokens (left-padded), t = generated tokens.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from uniss.engines import EngineUnavailableError
from uniss.engines.mt import MAX_SOURCE_CHARS, MTError, _check_pair, translation_prompt

#: Name of the engine in ``params.yaml`` (``data.mt``) and the cascade spec.
QWEN_MT_NAME = "qwen2.5-0.5b"
#: Folder of the installed checkpoint under ``settings.models_dir``.
QWEN_MT_DIR = "qwen2.5-coder-0.5b-instruct"
#: The command that installs it (opt-in; not part of ``make setup``).
QWEN_INSTALL_COMMAND = "python scripts/install_models.py --only qwen2.5-0.5b"

#: Qwen2.5's ChatML chat template without the tool branch (the released Qwen2.5-Instruct template,
#: also the ``tokenizer.chat_template`` of the installed GGUF; the safetensors install keeps no
#: template, so this is used when the tokenizer has none). Default system prompt as released.
QWEN25_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message.role == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

#: Version of the cached reply format (part of every cache key).
CACHE_VERSION = 1


class MTModelNotInstalledError(EngineUnavailableError):
    """The local LLM checkpoint of an MT engine is not installed (the message names the install command)."""


def default_qwen_dir() -> Path:
    """``<settings.models_dir>/qwen2.5-coder-0.5b-instruct`` (resolved)."""
    from uniss.settings import get_settings

    return get_settings().models_dir.expanduser().resolve() / QWEN_MT_DIR


class LocalChatMT:
    """App. E.2 LLM translation with a local ``transformers`` causal LM (Qwen2.5 instruct).

    Args:
        model_dir: checkpoint folder (``config.json``, ``model.safetensors``, ``tokenizer.json``);
            default :func:`default_qwen_dir`. Loaded on first use.
        model / tokenizer: an already built causal LM and tokenizer (tests: a tiny Qwen2 built from a
            config); both or neither. ``model_dir`` is then only the identity.
        batch_size: texts per ``generate`` call (left-padded).
        max_new_tokens: reply cap per text (tokens).
        threads: torch intra-op threads while generating (``None`` = leave torch's setting).
        cache_dir: folder of the on-disk reply cache (one JSON file per key); ``None`` = memory only.
    Raises:
        MTModelNotInstalledError: no ``model``/``tokenizer`` given and ``model_dir`` lacks
            ``config.json`` (message: :data:`QWEN_INSTALL_COMMAND`).
        MTError: only one of ``model``/``tokenizer``; ``batch_size`` or ``max_new_tokens`` < 1.
    """

    def __init__(self, model_dir: str | os.PathLike | None = None, *, model: Any = None, tokenizer: Any = None,
                 batch_size: int = 8, max_new_tokens: int = 256, threads: int | None = None,
                 cache_dir: str | os.PathLike | None = None) -> None:
        if (model is None) != (tokenizer is None):
            raise MTError("pass both model and tokenizer, or neither")
        if int(batch_size) < 1 or int(max_new_tokens) < 1:
            raise MTError(f"batch_size and max_new_tokens must be >= 1, got {batch_size}, {max_new_tokens}")
        self.model_dir = str(Path(model_dir) if model_dir is not None else default_qwen_dir())
        if model is None and not (Path(self.model_dir) / "config.json").is_file():
            raise MTModelNotInstalledError(
                f"LLM MT checkpoint not installed at {self.model_dir}; install it with `{QWEN_INSTALL_COMMAND}`")
        self.batch_size = int(batch_size)
        self.max_new_tokens = int(max_new_tokens)
        self.threads = threads
        self._model, self._tok = model, tokenizer
        self._given = model is not None
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._memo: dict[tuple[str, str, str], str] = {}
        self._lock = threading.Lock()
        self.calls = 0  # generate() calls made (tests, benchmarks)

    # ------------------------------------------------------------------ identity / loading
    def cache_id(self) -> str:
        """Engine identity for cache keys: class, checkpoint folder content digest, decoding settings.

        The digest hashes ``config.json`` and the file sizes of the folder (not the 2 GB weights) or,
        for a model passed in, its config; greedy decoding makes the reply a function of these.
        """
        h = hashlib.sha256()
        if self._given:
            h.update(self._model.config.to_json_string().encode())
        else:
            d = Path(self.model_dir)
            for p in sorted(d.iterdir()):
                if p.is_file():
                    h.update(f"{p.name}:{p.stat().st_size}".encode())
            h.update((d / "config.json").read_bytes())
        return f"{type(self).__module__}.{type(self).__qualname__}:{h.hexdigest()[:16]}:greedy:{self.max_new_tokens}"

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._model is None:
                from transformers import AutoModelForCausalLM, AutoTokenizer

                self._tok = AutoTokenizer.from_pretrained(self.model_dir)
                self._model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype="float32")
            self._model.eval()
            if not getattr(self._tok, "chat_template", None):
                self._tok.chat_template = QWEN25_CHAT_TEMPLATE
            self._tok.padding_side = "left"  # decoder-only batched generation: pad on the left
            if self._tok.pad_token_id is None:
                raise MTError(f"tokenizer of {self.model_dir} has no pad token")
        return self._model, self._tok

    # ------------------------------------------------------------------ cache
    def _key_path(self, key: tuple[str, str, str]) -> Path | None:
        if self._cache_dir is None:
            return None
        h = hashlib.sha256(json.dumps([CACHE_VERSION, self.cache_id(), *key]).encode()).hexdigest()
        return self._cache_dir / h[:2] / f"{h}.json"

    def _cached(self, key: tuple[str, str, str]) -> str | None:
        if key in self._memo:
            return self._memo[key]
        p = self._key_path(key)
        if p is not None and p.is_file():
            reply = json.loads(p.read_text(encoding="utf-8"))["reply"]
            self._memo[key] = reply
            return reply
        return None

    def _store(self, key: tuple[str, str, str], reply: str) -> None:
        self._memo[key] = reply
        p = self._key_path(key)
        if p is not None:
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_suffix(".tmp")
            tmp.write_text(json.dumps({"text": key[0], "src": key[1], "tgt": key[2], "reply": reply},
                                      ensure_ascii=False), encoding="utf-8")
            tmp.replace(p)

    # ------------------------------------------------------------------ translate
    def chat_inputs(self, texts: Sequence[str], src: str, tgt: str) -> Any:
        """Tokenised, left-padded chat prompts: ``BatchEncoding`` with ``input_ids`` and ``attention_mask`` (B, T)."""
        _, tok = self._load()
        chats = [tok.apply_chat_template([{"role": "user", "content": translation_prompt(t, src, tgt)}],
                                         tokenize=False, add_generation_prompt=True) for t in texts]
        return tok(chats, return_tensors="pt", padding=True, add_special_tokens=False)

    def _generate(self, texts: list[str], src: str, tgt: str) -> list[str]:
        import torch

        model, tok = self._load()
        enc = self.chat_inputs(texts, src, tgt)
        eos = [i for i in {tok.convert_tokens_to_ids("<|im_end|>"), tok.eos_token_id} if isinstance(i, int) and i >= 0]
        prev = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(int(self.threads))
        try:
            with torch.inference_mode():
                out = model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],  # (B, T)
                                     do_sample=False, max_new_tokens=self.max_new_tokens,
                                     eos_token_id=eos, pad_token_id=tok.pad_token_id)  # (B, T + t)
        finally:
            torch.set_num_threads(prev)
        self.calls += 1
        gen = out[:, enc["input_ids"].shape[1]:]  # (B, t)
        return [tok.decode(row, skip_special_tokens=True).strip() for row in gen]

    def translate(self, texts: Sequence[str], src: str, tgt: str) -> list[str]:
        """Translate each text ``src`` -> ``tgt`` (``en``/``zh``): raw replies (stripped), in input order.

        Cached replies are returned without model work; the rest are generated ``batch_size`` at a time.

        Raises:
            MTError: an empty or over-long (> :data:`uniss.engines.mt.MAX_SOURCE_CHARS`) text, same
                source and target language; UnknownLanguageError.
        """
        _check_pair(src, tgt)
        keys = []
        for t in texts:
            if not isinstance(t, str) or not t.strip():
                raise MTError("cannot translate an empty text")
            if len(t) > MAX_SOURCE_CHARS:
                raise MTError(f"source text has {len(t)} characters > max {MAX_SOURCE_CHARS}")
            keys.append((t.strip(), src, tgt))
        out: dict[tuple[str, str, str], str] = {}
        todo = []
        for k in keys:
            c = self._cached(k)
            if c is None:
                if k not in todo:
                    todo.append(k)
            else:
                out[k] = c
        for i in range(0, len(todo), self.batch_size):
            batch = todo[i:i + self.batch_size]
            for k, reply in zip(batch, self._generate([k[0] for k in batch], src, tgt), strict=True):
                self._store(k, reply)
                out[k] = reply
        return [out[k] for k in keys]


def make_mt(name: str, **kwargs: Any) -> Any:
    """An offline MT engine by its ``params.yaml`` name (``data.mt``).

    Args:
        name: :data:`QWEN_MT_NAME` (``qwen2.5-0.5b``, :class:`LocalChatMT` on the installed checkpoint).
            ``reference`` is built by the caller (it needs the corpus translations).
        kwargs: passed to the engine.
    Raises:
        MTError: unknown name; MTModelNotInstalledError: the checkpoint is not installed.
    """
    if name == QWEN_MT_NAME:
        return LocalChatMT(**kwargs)
    raise MTError(f"unknown MT engine {name!r}; offline engines: 'reference', {QWEN_MT_NAME!r}")
