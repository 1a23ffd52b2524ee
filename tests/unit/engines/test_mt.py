"""MT engines: App. E.2 clean-up rules, ReferenceMT, and OpenAIChatMT against a real local HTTP
server (127.0.0.1, started and stopped here) speaking the chat-completions API."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from uniss.engines import EngineUnavailableError, UnknownLanguageError
from uniss.engines.mt import (PROMPT_EN_TO_ZH, PROMPT_ZH_TO_EN, EmptyTranslationError, MixedScriptError, MTError,
                              OpenAIChatMT, ReferenceMT, clean_translation)


# ------------------------------------------------------------------------------- clean-up rules
@pytest.mark.parametrize("raw,tgt,want", [
    ("Sure, here is the translation: I like tea.", "en", "I like tea."),                       # rule 1
    ("Sure! Here's the English translation:\nI like tea.", "en", "I like tea."),              # rule 1 stacked
    ("Translation: The sky is blue.", "en", "The sky is blue."),                              # rule 1
    ("好的，以下是翻译：我喜欢喝茶。", "zh", "我喜欢喝茶。"),                                      # rule 1 zh
    ("I like tea.\n\nNote: the source uses a polite form.", "en", "I like tea."),            # rule 2
    ("I like tea. (Note: literal translation)", "en", "I like tea."),                        # rule 2
    ("我喜欢喝茶。\n注：这里的茶指绿茶。", "zh", "我喜欢喝茶。"),                                    # rule 2 zh
    ("  The sky\n is   blue\t today. ", "en", "The sky is blue today."),                     # rule 3
    ("我喜欢\n喝茶 。", "zh", "我喜欢喝茶。"),                                                     # rule 3 zh
    ("\"The sky is blue.\"", "en", "The sky is blue."),
    ("He said hello.", "en", "He said hello."),                                              # untouched
])
def test_clean_translation_rules(raw, tgt, want):
    assert clean_translation(raw, tgt) == want


@pytest.mark.parametrize("raw,tgt", [("我喜欢 tea。", "zh"), ("I like 茶.", "en"), ("I like tea.", "zh")])
def test_mixed_or_wrong_script_rejected(raw, tgt):
    with pytest.raises(MixedScriptError):
        clean_translation(raw, tgt)


def test_clean_translation_empty_and_language():
    with pytest.raises(EmptyTranslationError):
        clean_translation("Here is the translation:\n\nNote: I could not translate it.", "en")
    with pytest.raises(UnknownLanguageError):
        clean_translation("hola", "es")


def test_reference_mt():
    mt = ReferenceMT({"I like tea.": "我喜欢喝茶。", " 你好 ": "Hello"})
    assert mt.translate(["I like tea.", "I like tea. "], "en", "zh") == ["我喜欢喝茶。"] * 2
    assert mt.translate(["你好"], "zh", "en") == ["Hello"]
    with pytest.raises(MTError, match="no reference"):
        mt.translate(["unknown"], "en", "zh")
    with pytest.raises(MTError):
        mt.translate(["I like tea."], "en", "en")


# ------------------------------------------------------------------------------- chat server
class ChatServer:
    """A tiny OpenAI-compatible chat-completions server; behaviour per request set by ``mode``."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.mode = "ok"
        self.fail_first = 0
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                if outer.fail_first > 0:
                    outer.fail_first -= 1
                    return self._send(503, {"error": "busy"})
                if outer.mode == "slow":
                    time.sleep(1.5)
                if outer.mode == "bad_request":
                    return self._send(400, {"error": {"message": "bad model"}})
                if outer.mode == "malformed":
                    return self._send(200, {"id": "x", "choices": []})
                text = body["messages"][0]["content"].split("\n", 1)[1]
                reply = {"I like tea.": "Sure, here is the translation: 我喜欢喝茶。",
                         "我喜欢喝茶。": "I like drinking tea.\nNote: literal."}.get(text, "?")
                return self._send(200, {"id": "c1", "object": "chat.completion",
                                        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                                                     "finish_reason": "stop"}]})

            def _send(self, code, obj):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    with ChatServer() as s:
        yield s


def test_openai_chat_mt_roundtrip(server, monkeypatch):
    monkeypatch.setenv("UNISS_TEST_MT_KEY", "k-123")
    mt = OpenAIChatMT(server.url, "qwen2.5-72b-instruct", api_key_env="UNISS_TEST_MT_KEY")
    raw = mt.translate(["I like tea."], "en", "zh")
    assert raw == ["Sure, here is the translation: 我喜欢喝茶。"]
    assert clean_translation(raw[0], "zh") == "我喜欢喝茶。"
    req = server.requests[-1]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer k-123"
    assert req["body"]["model"] == "qwen2.5-72b-instruct"
    assert req["body"]["messages"][0]["content"] == f"{PROMPT_EN_TO_ZH}\nI like tea."
    out = mt.translate(["我喜欢喝茶。"], "zh", "en")
    assert clean_translation(out[0], "en") == "I like drinking tea."
    assert server.requests[-1]["body"]["messages"][0]["content"].startswith(
        "Please translate the following text into English (Note that, aside from the translation, "
        "no other responses or explanations should be provided.):")
    assert PROMPT_ZH_TO_EN in server.requests[-1]["body"]["messages"][0]["content"]


def test_openai_chat_mt_errors(server, monkeypatch):
    monkeypatch.delenv("UNISS_TEST_MT_MISSING", raising=False)
    with pytest.raises(EngineUnavailableError, match="UNISS_TEST_MT_MISSING"):
        OpenAIChatMT(server.url, "m", api_key_env="UNISS_TEST_MT_MISSING")
    mt = OpenAIChatMT(server.url + "/v1", "m", api_key_env=None, max_retries=1, timeout_s=0.5)
    server.fail_first = 1  # one 503, then success: retried
    assert mt.translate(["I like tea."], "en", "zh")
    assert len(server.requests) == 2 and server.requests[0]["auth"] is None
    server.fail_first = 5
    with pytest.raises(MTError, match="503"):
        mt.translate(["I like tea."], "en", "zh")
    server.fail_first = 0
    server.mode = "slow"
    with pytest.raises(MTError, match="timed out"):
        mt.translate(["I like tea."], "en", "zh")
    server.mode = "bad_request"
    with pytest.raises(MTError, match="HTTP 400"):
        mt.translate(["I like tea."], "en", "zh")
    server.mode = "malformed"
    with pytest.raises(MTError, match="choices"):
        mt.translate(["I like tea."], "en", "zh")
    with pytest.raises(MTError, match="empty"):
        mt.translate(["  "], "en", "zh")
    with pytest.raises(UnknownLanguageError):
        mt.translate(["x"], "en", "fr")


def test_unreachable_server():
    mt = OpenAIChatMT("http://127.0.0.1:9", "m", api_key_env=None, max_retries=0, timeout_s=1)
    with pytest.raises(MTError, match="connection failed"):
        mt.translate(["I like tea."], "en", "zh")
