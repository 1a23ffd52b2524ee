"""Load test: N concurrent clients for D seconds against a running UniSS KServe server (v1).

Bounded: each client loops until the deadline, one request in flight per client; only loopback
URLs are accepted. Writes errors, p50/p95 latency (s) and throughput (requests/s, audio s/s) as JSON.

Run: start a server (``uniss serve --model BUNDLE --port 8080``), then
``python benchmarks/load_test.py --url http://127.0.0.1:8080 --clients 16 --duration-s 60``; or let
the test start its own server on 127.0.0.1 (a free port) in a subprocess, which it stops (SIGTERM
to that one process id) at the end: ``--bundle DIR`` serves a model bundle, ``--tiny`` the
random-init tiny test model.

Request audio: client ``i`` sends a ``0.8 + 0.1 x (i mod 4)`` s clip. Against a bundle these are
cut from real recorded speech (Debian ``pocketsphinx-testdata`` LibriVox clips, as
``benchmarks/bench_engine.py``) when present, because the server refuses audio without speech
(HTTP 400, ``ServeConfig.min_speech_s``); otherwise, and for ``--tiny``, test tones.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
import soundfile as sf
from tqdm import tqdm

from uniss.settings import MODEL_NAME
from uniss.unist.readers import LIBRIVOX_DIR as LIBRIVOX  # Debian pocketsphinx-testdata

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "unit" / "serving"


def _clip(seconds: float, freq: float, speech: np.ndarray | None = None, at: int = 0) -> str:
    """Base64 WAV of ``seconds`` of 16 kHz audio: ``speech[at:]`` (``(N,)`` float32 16 kHz) when
    given, else a ``freq`` Hz tone."""
    n = int(seconds * 16000)
    if speech is not None and speech.size >= n:
        at = at % (speech.size - n + 1)
        x = speech[at: at + n].astype(np.float32)
    else:
        t = np.arange(n) / 16000
        x = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    b = io.BytesIO()
    sf.write(b, x, 16000, format="WAV")
    return base64.b64encode(b.getvalue()).decode()


async def _client(i: int, url: str, deadline: float, lat: list, errors: list, bar, speech: np.ndarray | None) -> None:
    audio = _clip(0.8 + 0.1 * (i % 4), 150 + 10 * i, speech, at=i * 24000)
    body = {"instances": [{"audio_b64": audio, "target_language": "zh" if i % 2 else "en",
                           "mode": "performance" if i % 3 else "quality", "seed": i}]}
    async with httpx.AsyncClient(timeout=300) as c:
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            try:
                r = await c.post(f"{url}/v1/models/{MODEL_NAME}:predict", json=body)
                if r.status_code != 200:
                    errors.append(f"{r.status_code}: {r.text[:200]}")
                else:
                    lat.append(time.perf_counter() - t)
            except httpx.HTTPError as e:
                errors.append(f"{type(e).__name__}: {e}")
            bar.update(1)


def _speech() -> np.ndarray | None:
    """``(N,)`` float32 16 kHz: the LibriVox recordings concatenated, or ``None`` when absent."""
    clips = sorted(LIBRIVOX.glob("*.wav")) if LIBRIVOX.is_dir() else []
    if not clips:
        return None
    from uniss.audio import load_audio

    return np.concatenate([load_audio(p) for p in clips])


def _start_server(bundle: str | None) -> tuple[subprocess.Popen, str]:
    """Start a model server on 127.0.0.1 (a free port) in a subprocess: the bundle ``bundle``, or the
    tiny test model when ``None``. Returns (process, base URL) once it reports the model ready.

    Raises:
        RuntimeError: the server did not become ready within 10 minutes (the process is killed).
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if bundle is None:
        code = (f"import sys; sys.path.insert(0, {str(TINY)!r}); import tiny_model as tm; "
                "from serving.predictor import ServeConfig, serve; "
                "serve(engine=tm.tiny_engine(), host='127.0.0.1', port=int(sys.argv[1]), config=ServeConfig(max_batch=16))")
    else:
        code = ("import sys; from serving.predictor import ServeConfig, serve; "
                f"serve({str(Path(bundle).resolve())!r}, host='127.0.0.1', port=int(sys.argv[1]), config=ServeConfig(max_batch=16))")
    log = open(ROOT / "benchmarks" / "results" / "load_test_server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-c", code, str(port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(1200):
        if proc.poll() is not None:
            raise RuntimeError(f"model server exited with {proc.returncode} (see benchmarks/results/load_test_server.log)")
        try:
            if httpx.get(f"{url}/v1/models/{MODEL_NAME}", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError("model server did not start (see benchmarks/results/load_test_server.log)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default=None)
    ap.add_argument("--tiny", action="store_true", help="start the tiny test model server in a subprocess")
    ap.add_argument("--bundle", default=None, help="start a server for this model bundle dir in a subprocess")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--duration-s", type=float, default=60.0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "load_test.json"))
    args = ap.parse_args()
    proc = None
    speech = _speech() if not args.tiny else None
    if args.tiny or args.bundle:
        proc, url = _start_server(args.bundle)
    else:
        url = args.url or "http://127.0.0.1:8080"
    if urlparse(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("load_test only targets loopback servers")
    lat: list[float] = []
    errors: list[str] = []
    try:
        load_before = os.getloadavg()
        start = time.perf_counter()
        with tqdm(desc="requests", unit="req") as bar:
            async def run():
                deadline = time.perf_counter() + args.duration_s
                await asyncio.gather(*[_client(i, url, deadline, lat, errors, bar, speech) for i in range(args.clients)])
            asyncio.run(run())
        wall = time.perf_counter() - start
        healthy = httpx.get(f"{url}/v2/health/ready", timeout=5).status_code == 200
    finally:
        if proc is not None:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    a = np.asarray(lat)
    out = {
        "url": url, "model": "tiny random-init test model" if args.tiny else (args.bundle or "external"), "clients": args.clients,
        "audio": "LibriVox speech" if speech is not None else "test tones", "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "duration_s": args.duration_s, "wall_s": wall, "requests_ok": int(a.size), "errors": len(errors),
        "error_samples": errors[:5], "p50_s": float(np.percentile(a, 50)) if a.size else None,
        "p95_s": float(np.percentile(a, 95)) if a.size else None, "throughput_rps": a.size / wall,
        "server_ready_after": healthy,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
