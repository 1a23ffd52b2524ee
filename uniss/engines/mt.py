"""Text machine translation for UniST synthesis (paper §4 and App. E.2).

- :class:`MTEngine` protocol: ``translate(texts, src, tgt) -> list[str]`` (raw engine output).
- :class:`ReferenceMT`: the corpus's own reference translation of each source text (offline; no
  English<->Chinese MT model can be had on this machine, FACTS.md).
- :class:`OpenAIChatMT`: any OpenAI-compatible ``POST {base_url}/v1/chat/completions`` server (vLLM,
  TGI, llama.cpp, OpenAI) with the paper's App. E.2 prompt (the paper used Qwen2.5-72B-Instruct).
- :func:`clean_translation`: the paper's four clean-up rules of App. E.2 (prefixes, notes,
  whitespace, mixed script -> :class:`MixedScriptError`).
"""

from __future__ import annotations

import os
import re
import unicodedata
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from uniss.engines import EngineError, EngineUnavailableError, check_language

#: App. E.2 prompt for Chinese source text (verbatim from the paper).
PROMPT_ZH_TO_EN = ("Please translate the following text into English (Note that, aside from the translation, "
                   "no other responses or explanations should be provided.):")

#: App. E.2: "the corresponding Chinese version of this prompt" for English source text (the paper does
#: not print it; this is our direct Chinese rendering of the English prompt).
PROMPT_EN_TO_ZH = "请将以下文本翻译成中文（注意，除了译文之外，不要提供任何其他回复或解释。）："

#: Longest accepted source text (characters) per request.
MAX_SOURCE_CHARS = 4000

#: HTTP statuses below 500 that are retried (429 Too Many Requests; every 5xx is retried too).
RETRY_STATUS: frozenset[int] = frozenset({429})

#: Default wait between MT request attempts: exponential backoff 1 s, 2 s, 4 s ..., capped at 8 s.
RETRY_WAIT = wait_exponential(multiplier=1, min=1, max=8)

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df]")
_LATIN = re.compile(r"[A-Za-z]")

# Rule 1: chatty prefixes ("Sure, here is the translation:", "好的，以下是翻译：").
_PREFIXES = [
    re.compile(r"^\s*(?:(?:sure|certainly|of course|okay|ok|alright)\s*[,.!]?\s*)?"
               r"(?:here(?:'s| is| are)\s+)(?:the\s+|your\s+|my\s+)?(?:\w+\s+)?translations?\b[^:\n]*[:.]\s*", re.I),
    re.compile(r"^\s*(?:sure|certainly|of course|okay|ok|alright)\s*[,.!]\s*", re.I),
    re.compile(r"^\s*(?:english\s+|chinese\s+)?translation\s*[:：]\s*", re.I),
    re.compile(r"^\s*(?:好的|当然|没问题|可以)[，,。！!\s]*"),
    re.compile(r"^\s*(?:以下是|下面是|这是)[^：:\n]{0,20}?(?:翻译|译文)[^：:\n]{0,10}[：:]\s*"),
    re.compile(r"^\s*(?:中文|英文)?(?:翻译|译文)(?:结果)?\s*[：:]\s*"),
]

# Rule 2: explanatory notes, from the marker to the end ("Note: ...", "(Note: ...)", "注：...").
_NOTES = re.compile(
    r"(?:[(（]\s*)?(?:\bnotes?\b\s*[:.：]|\bexplanation\s*[:：]|\bp\.s\.|注[：:]|注意[：:]|说明[：:]|解释[：:]|备注[：:]|注释[：:])",
    re.I)

_QUOTES = [('"', '"'), ("“", "”"), ("'", "'"), ("「", "」"), ("《", "》")]


class MTError(EngineError):
    """Translation request failed (server error, timeout, malformed reply, missing reference)."""


class _TransientMTError(MTError):
    """A failure worth retrying (timeout, connection error, HTTP 429 / 5xx); never leaves this module:
    :meth:`OpenAIChatMT._post` turns the last one into a plain :class:`MTError`."""


class MixedScriptError(MTError):
    """A translation that mixes Chinese and Latin script, or is in the wrong script for its target
    language (paper App. E.2 rule 4: such outputs are discarded as invalid)."""


class EmptyTranslationError(MTError):
    """Nothing is left of the translation after clean-up."""


@runtime_checkable
class MTEngine(Protocol):
    """Text translation: ``B`` source strings -> ``B`` target strings (raw, before clean-up)."""

    def translate(self, texts: Sequence[str], src: str, tgt: str) -> list[str]:
        """Translate each text from ``src`` to ``tgt`` (``en``/``zh``)."""
        ...


def _check_pair(src: str, tgt: str) -> None:
    check_language(src)
    check_language(tgt)
    if src == tgt:
        raise MTError(f"source and target language are both {src!r}")


def translation_prompt(text: str, src: str, tgt: str) -> str:
    """The App. E.2 user message for ``text`` (prompt line, then the text on the next line)."""
    _check_pair(src, tgt)
    return f"{PROMPT_ZH_TO_EN if src == 'zh' else PROMPT_EN_TO_ZH}\n{text}"


def clean_translation(text: str, tgt: str) -> str:
    """Apply the paper's four clean-up rules (App. E.2) to one LLM translation.

    1. Remove chatty prefixes ("Sure, here is the translation:", "好的，以下是翻译：", "Translation:").
    2. Remove explanatory notes from their marker on ("Note: ...", "(Note: ...)", "注：...").
    3. Normalise formatting: line breaks and runs of whitespace -> one space (none between Chinese
       characters for a ``zh`` target); surrounding quotes removed.
    4. Reject mixed script: a ``zh`` target containing Latin letters or no Han character, an ``en``
       target containing Han characters -> :class:`MixedScriptError`.

    Args:
        text: raw engine output.
        tgt: target language ``en`` or ``zh``.
    Returns:
        the cleaned translation (non-empty).
    Raises:
        MixedScriptError, EmptyTranslationError, UnknownLanguageError.
    """
    check_language(tgt)
    s = unicodedata.normalize("NFC", text or "").strip()
    # rule 1 (repeat: "Sure! Here is the translation:" stacks two prefixes)
    for _ in range(3):
        before = s
        for p in _PREFIXES:
            s = p.sub("", s, count=1).lstrip()
        if s == before:
            break
    # rule 2
    m = _NOTES.search(s)
    if m:
        s = s[: m.start()]
    # rule 3
    s = " ".join(s.split())
    for a, b in _QUOTES:
        if len(s) >= 2 and s.startswith(a) and s.endswith(b):
            s = s[len(a): -len(b)].strip()
    if tgt == "zh":
        s = re.sub(r"(?<=[^\x00-\x7f])\s+|\s+(?=[^\x00-\x7f])", "", s)
    if not s:
        raise EmptyTranslationError(f"translation is empty after clean-up (raw: {text[:80]!r})")
    # rule 4
    has_han, has_latin = bool(_HAN.search(s)), bool(_LATIN.search(s))
    if tgt == "zh" and (has_latin or not has_han):
        raise MixedScriptError(f"zh translation {'mixes Latin script' if has_han else 'has no Chinese'}: {s[:80]!r}")
    if tgt == "en" and has_han:
        raise MixedScriptError(f"en translation contains Chinese characters: {s[:80]!r}")
    return s


class ReferenceMT:
    """The corpus's own translations: ``translate`` looks each source text up in ``translations``.

    Args:
        translations: ``{source text: reference translation}`` (exact, whitespace-stripped keys).
    Raises (translate): MTError naming the first source text without a reference.
    """

    def __init__(self, translations: Mapping[str, str]) -> None:
        self.translations = {k.strip(): v for k, v in dict(translations).items()}

    def translate(self, texts: Sequence[str], src: str, tgt: str) -> list[str]:
        """Reference translation of each text (``src`` -> ``tgt``)."""
        _check_pair(src, tgt)
        out = []
        for t in texts:
            ref = self.translations.get((t or "").strip())
            if ref is None:
                raise MTError(f"no reference translation for {t[:80]!r}")
            out.append(ref)
        return out


class OpenAIChatMT:
    """LLM translation through an OpenAI-compatible chat-completions server, App. E.2 prompt.

    Args:
        base_url: server root, e.g. ``http://127.0.0.1:8000`` (``/v1/chat/completions`` is appended
            unless the URL already ends with ``/v1``).
        model: model name sent in the request.
        api_key_env: name of the environment variable holding the bearer key; ``None`` sends no key
            (local servers). The key itself is never an argument, never logged.
        timeout_s: per-request timeout (connect + read), seconds.
        max_retries: extra attempts on timeouts, connection errors, HTTP 429 and 5xx (other 4xx are
            not retried); ``0`` = one attempt only.
        retry_wait: tenacity wait strategy between attempts; ``None`` = :data:`RETRY_WAIT`
            (exponential 1 s, 2 s, 4 s ... capped at 8 s). Tests pass ``tenacity.wait_none()``.
        temperature: sampling temperature (0 = greedy, reproducible).
        max_tokens: reply token cap.
    Raises:
        EngineUnavailableError: ``api_key_env`` names an unset variable.
        MTError: ``max_retries`` < 0.
    Source: OpenAI Chat Completions API (https://platform.openai.com/docs/api-reference/chat).
    """

    def __init__(self, base_url: str, model: str, api_key_env: str | None = "OPENAI_API_KEY", *,
                 timeout_s: float = 60.0, max_retries: int = 2, temperature: float = 0.0,
                 max_tokens: int = 1024, retry_wait: Any = None) -> None:
        if int(max_retries) < 0:
            raise MTError(f"max_retries must be >= 0, got {max_retries}")
        url = base_url.rstrip("/")
        self.url = url + ("/chat/completions" if url.endswith("/v1") else "/v1/chat/completions")
        self.model = model
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.retry_wait = RETRY_WAIT if retry_wait is None else retry_wait
        self.temperature = float(temperature)
        self.max_tokens = int(max_tokens)
        self._headers = {"Content-Type": "application/json"}
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise EngineUnavailableError(f"environment variable {api_key_env} (MT API key) is not set")
            self._headers["Authorization"] = f"Bearer {key}"

    def _attempt(self, client: Any, payload: dict) -> dict:
        """One POST. Transient failures raise :class:`_TransientMTError` (retried by :meth:`_post`)."""
        import httpx

        try:
            r = client.post(self.url, json=payload, headers=self._headers)
        except httpx.TimeoutException:  # before TransportError: it is a subclass
            raise _TransientMTError(f"timed out after {self.timeout_s:g} s") from None
        except httpx.TransportError as e:
            raise _TransientMTError(f"connection failed: {e}") from None
        if r.status_code in RETRY_STATUS or r.status_code >= 500:
            raise _TransientMTError(f"HTTP {r.status_code}: {r.text[:200]}")
        if r.status_code >= 400:
            raise MTError(f"MT server {self.url} rejected the request: HTTP {r.status_code}: {r.text[:200]}")
        try:
            return r.json()
        except ValueError:
            raise MTError(f"MT server {self.url} returned non-JSON: {r.text[:200]!r}") from None

    def _post(self, client: Any, payload: dict) -> dict:
        """POST ``payload`` with up to ``max_retries`` retries of transient failures (tenacity).

        Retried: timeouts, connection errors, HTTP 429 and 5xx, waiting :attr:`retry_wait` between
        attempts. Not retried: other 4xx, a non-JSON 200 reply.
        Raises:
            MTError: a non-retried failure, or the last transient failure once the attempts are spent.
        """
        retrying = Retrying(stop=stop_after_attempt(self.max_retries + 1), wait=self.retry_wait,
                            retry=retry_if_exception_type(_TransientMTError), reraise=True)
        try:
            return retrying(self._attempt, client, payload)
        except _TransientMTError as e:
            raise MTError(f"MT server {self.url} failed after {self.max_retries + 1} attempts: {e}") from None

    def translate(self, texts: Sequence[str], src: str, tgt: str) -> list[str]:
        """Translate each text with one chat completion (``src`` -> ``tgt``); raw replies, stripped.

        Raises: MTError (empty/oversized text, HTTP error, timeout, malformed reply), UnknownLanguageError.
        """
        import httpx

        _check_pair(src, tgt)
        out = []
        with httpx.Client(timeout=self.timeout_s) as client:
            for t in texts:
                if not t or not t.strip():
                    raise MTError("cannot translate an empty text")
                if len(t) > MAX_SOURCE_CHARS:
                    raise MTError(f"source text has {len(t)} characters > max {MAX_SOURCE_CHARS}")
                payload = {"model": self.model, "temperature": self.temperature, "max_tokens": self.max_tokens,
                           "messages": [{"role": "user", "content": translation_prompt(t.strip(), src, tgt)}]}
                data = self._post(client, payload)
                try:
                    content = data["choices"][0]["message"]["content"]
                except (KeyError, IndexError, TypeError):
                    raise MTError(f"MT server reply has no choices[0].message.content: {str(data)[:200]}") from None
                if not isinstance(content, str):
                    raise MTError(f"MT server reply content is not text: {content!r:.100}")
                out.append(content.strip())
        return out
