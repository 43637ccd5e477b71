"""Bounded loopback load test of `trainlab serve`: N image requests from C concurrent clients.

    python bench/serve_load.py                         # trains a digits MLP in a temp dir, then 2,000 x 8
    python bench/serve_load.py runs/demo --requests 2000 --concurrency 8 --timeout 120

Starts the real server (`python -m trainlab serve RUN --port 0`, uvicorn) on 127.0.0.1 only, POSTs PNGs of
the dataset's last 64 digits as multipart uploads (the accuracy printed is a sanity check, not a test score),
checks every answer (status 200, a prediction), and prints p50/p99 latency and requests/s. Bounded: a fixed
request count and a hard deadline; the server is stopped at the end. Nothing leaves the loopback interface.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def served(target: str | Path, startup_timeout: float = 60.0):
    """`trainlab serve TARGET` in a subprocess on a free 127.0.0.1 port; yields its base URL."""
    cmd = [sys.executable, "-m", "trainlab", "serve", str(target), "--host", "127.0.0.1", "--port", "0",
           "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = _wait_url(proc, startup_timeout)
        deadline = time.monotonic() + startup_timeout
        while time.monotonic() < deadline:  # the URL is printed before uvicorn accepts connections
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()  # uvicorn shuts down gracefully on SIGTERM
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_url(proc: subprocess.Popen, timeout: float) -> str:
    found: list[str] = []
    lines: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            m = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
            if m:
                found.append(m.group(1))
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    if not found:
        raise RuntimeError(f"the server did not start: {''.join(lines)[-2000:]}")
    # keep draining the pipe so the server never blocks on a full stdout
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return found[0]


def digit_payloads(n: int = 64) -> list[tuple[bytes, int]]:
    """PNG bytes and labels of the last n scikit-learn digits (uint8 scaling as trainlab's digits dataset)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    out = []
    for img, label in zip(d.images[-n:], d.target[-n:], strict=True):
        buf = io.BytesIO()
        Image.fromarray(np.round(img * (255.0 / 16.0)).astype(np.uint8)).save(buf, "PNG")
        out.append((buf.getvalue(), int(label)))
    return out


def load(url: str, payloads: list[tuple[bytes, int]], requests: int = 2000, concurrency: int = 8,
         timeout: float = 120.0) -> dict:
    """POST `requests` uploads from `concurrency` keep-alive clients; stop at the deadline. -> figures."""
    deadline = time.monotonic() + timeout
    lock, counter = threading.Lock(), iter(range(requests))
    latencies: list[float] = []
    errors: list[str] = []
    correct = [0]

    def worker() -> None:
        with httpx.Client(base_url=url, timeout=10.0) as client:
            while time.monotonic() < deadline:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                png, label = payloads[i % len(payloads)]
                t0 = time.perf_counter()
                try:
                    r = client.post("/predict", files={"file": ("digit.png", png, "image/png")})
                    ok = r.status_code == 200 and "predictions" in r.json()
                except (httpx.HTTPError, ValueError) as e:
                    r, ok = None, False
                    errors.append(type(e).__name__)
                dt = time.perf_counter() - t0
                with lock:
                    if ok:
                        latencies.append(dt)
                        correct[0] += r.json()["predictions"][0]["prediction"] == str(label)
                    elif r is not None:
                        errors.append(f"HTTP {r.status_code}")

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 15)
    wall = time.perf_counter() - start
    lat = np.array(latencies) * 1000
    done = len(latencies)
    unsent = requests - done - len(errors)  # the deadline passed first
    return {"requests": requests, "ok": done, "errors": len(errors) + unsent, "unsent": unsent,
            "error_kinds": sorted(set(errors)), "concurrency": concurrency, "seconds": round(wall, 3),
            "rps": round(done / wall, 1) if wall else 0.0,
            "p50_ms": round(float(np.percentile(lat, 50)), 2) if done else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 2) if done else None,
            "accuracy": round(correct[0] / done, 4) if done else None}


def _train_demo(out: Path) -> Path:
    from trainlab.cli.main import main

    code = main(["train", str(ROOT / "examples" / "digits-mlp.yaml"), "--out", str(out), "train.epochs=5"])
    if code != 0:
        raise SystemExit(f"training the demo run failed (exit {code})")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("target", nargs="?", help="run directory or exported model (default: train a digits MLP)")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--timeout", type=float, default=120.0, help="hard deadline for the whole load, seconds")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        target = args.target or _train_demo(Path(tmp) / "run")
        with served(target) as url:
            stats = load(url, digit_payloads(), args.requests, args.concurrency, args.timeout)
    if args.json:
        print(json.dumps(stats))
    else:
        print(f"{stats['ok']}/{stats['requests']} ok, {stats['errors']} errors, concurrency {stats['concurrency']}: "
              f"p50 {stats['p50_ms']} ms, p99 {stats['p99_ms']} ms, {stats['rps']} requests/s "
              f"({stats['seconds']} s; accuracy {stats['accuracy']})")
    return 0 if stats["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
