"""OpenAIChatMT retries (tenacity): transient failures (timeout, connection error, HTTP 429 / 5xx)
are retried up to ``max_retries`` times, other 4xx never; callers only ever see :class:`MTError`.
No network: httpx's own ``MockTransport`` answers every request, and waits are zero."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest
from tenacity import wait_none

from uniss.engines.mt import RETRY_WAIT, MTError, OpenAIChatMT

OK = {"choices": [{"index": 0, "message": {"role": "assistant", "content": " 我喜欢喝茶。 "}}]}


class FakeServer:
    """Scripted replies, one per request: an ``int`` status (JSON error body), a ``dict`` (200 JSON),
    a ``str`` (200 plain text) or an exception class (raised as the transport failure)."""

    def __init__(self, *script) -> None:
        self.script = list(script)
        self.calls = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        step = self.script.pop(0) if self.script else OK
        if isinstance(step, type) and issubclass(step, Exception):
            raise step("scripted failure", request=request)
        if isinstance(step, int):
            return httpx.Response(step, json={"error": f"status {step}"})
        if isinstance(step, str):
            return httpx.Response(200, text=step)
        return httpx.Response(200, json=step)


@pytest.fixture
def fake(monkeypatch):
    """``fake(*script)`` -> a FakeServer that every ``httpx.Client`` made by translate() talks to."""
    real_client = httpx.Client

    def make(*script):
        srv = FakeServer(*script)
        monkeypatch.setattr(httpx, "Client", lambda **kw: real_client(transport=httpx.MockTransport(srv.handler), **kw))
        return srv

    return make


def _mt(max_retries=2):
    return OpenAIChatMT("http://mt.invalid", "m", api_key_env=None, max_retries=max_retries, retry_wait=wait_none())


@pytest.mark.parametrize("transient", [503, 500, 429, httpx.ConnectError, httpx.ReadTimeout])
def test_transient_failure_then_success_returns_result(fake, transient):
    srv = fake(transient, OK)
    assert _mt().translate(["I like tea."], "en", "zh") == ["我喜欢喝茶。"]
    assert srv.calls == 2


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_client_error_is_not_retried(fake, status):
    srv = fake(status, OK)
    with pytest.raises(MTError, match=f"rejected the request: HTTP {status}"):
        _mt().translate(["I like tea."], "en", "zh")
    assert srv.calls == 1


def test_exhausted_retries_raise_typed_error_after_max_retries_plus_one_attempts(fake):
    srv = fake(503, httpx.ConnectError, 502, OK)
    with pytest.raises(MTError, match=r"failed after 3 attempts: HTTP 502") as ei:
        _mt(max_retries=2).translate(["I like tea."], "en", "zh")
    assert type(ei.value) is MTError  # the private transient subclass never leaks to callers
    assert srv.calls == 3
    srv = fake(httpx.ReadTimeout)
    with pytest.raises(MTError, match="failed after 1 attempts: timed out"):
        _mt(max_retries=0).translate(["I like tea."], "en", "zh")
    assert srv.calls == 1


def test_non_json_reply_is_not_retried(fake):
    srv = fake("<html>busy</html>", OK)
    with pytest.raises(MTError, match="non-JSON"):
        _mt().translate(["I like tea."], "en", "zh")
    assert srv.calls == 1


def test_default_wait_is_bounded_exponential_and_negative_retries_rejected():
    waits = [RETRY_WAIT(SimpleNamespace(attempt_number=n)) for n in range(1, 7)]
    assert waits == [1, 2, 4, 8, 8, 8]
    assert OpenAIChatMT("http://x", "m", api_key_env=None).retry_wait is RETRY_WAIT
    with pytest.raises(MTError, match="max_retries"):
        OpenAIChatMT("http://x", "m", api_key_env=None, max_retries=-1)
