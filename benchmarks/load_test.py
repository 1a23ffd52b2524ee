"""Load test: N concurrent clients for D seconds against a running UniSS KServe server (v1).

Bounded: each client loops until the deadline, one request in flight per client; only loopback
URLs are accepted. Writes errors, p50/p95 latency (s) and throughput (requests/s, audio s/s) as JSON.

Run: start a server (``uniss serve --model BUNDLE --port 8080``, or ``--tiny`` here to start the
random-init tiny test model in a subprocess), then
``python benchmarks/load_test.py --url http://127.0.0.1:8080 --clients 16 --duration-s 60``.
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

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "unit" / "serving"


def _clip(seconds: float, freq: float) -> str:
    t = np.arange(int(seconds * 16000)) / 16000
    x = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    b = io.BytesIO()
    sf.write(b, x, 16000, format="WAV")
    return base64.b64encode(b.getvalue()).decode()


async def _client(i: int, url: str, deadline: float, lat: list, errors: list, bar) -> None:
    body = {"instances": [{"audio_b64": _clip(0.8 + 0.1 * (i % 4), 150 + 10 * i), "target_language": "zh" if i % 2 else "en",
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


def _start_tiny() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = (f"import sys; sys.path.insert(0, {str(TINY)!r}); import tiny_model as tm; "
            "from serving.predictor import ServeConfig, serve; "
            "serve(engine=tm.tiny_engine(), host='127.0.0.1', port=int(sys.argv[1]), config=ServeConfig(max_batch=16))")
    log = open(ROOT / "benchmarks" / "results" / "load_test_server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-c", code, str(port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            if httpx.get(f"{url}/v1/models/{MODEL_NAME}", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError("tiny server did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default=None)
    ap.add_argument("--tiny", action="store_true", help="start the tiny test model server in a subprocess")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--duration-s", type=float, default=60.0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "load_test.json"))
    args = ap.parse_args()
    proc = None
    if args.tiny:
        proc, url = _start_tiny()
    else:
        url = args.url or "http://127.0.0.1:8080"
    if urlparse(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("load_test only targets loopback servers")
    lat: list[float] = []
    errors: list[str] = []
    try:
        start = time.perf_counter()
        with tqdm(desc="requests", unit="req") as bar:
            async def run():
                deadline = time.perf_counter() + args.duration_s
                await asyncio.gather(*[_client(i, url, deadline, lat, errors, bar) for i in range(args.clients)])
            asyncio.run(run())
        wall = time.perf_counter() - start
        healthy = httpx.get(f"{url}/v2/health/ready", timeout=5).status_code == 200
    finally:
        if proc is not None:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    a = np.asarray(lat)
    out = {
        "url": url, "model": "tiny random-init test model" if args.tiny else "external", "clients": args.clients,
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
