"""What MLflow tracking costs a run: `examples/digits-mlp.yaml` trained with and without track.mlflow.

    python bench/tracking_overhead.py --repeats 5                       # starts its own mlflow server
    python bench/tracking_overhead.py --mlflow http://127.0.0.1:5000    # or logs to a running one
    python bench/tracking_overhead.py --threads 1                       # train.num_threads=1 (a busy machine)

Runs alternate (off, on / on, off) in one process, so machine drift hits both alike. Per epoch = the wall time
of `Trainer.fit` (training, validation, checkpoint, every epoch hook) / epochs; the end of a tracked run also
waits for the helper process to finish its uploads (`Tracking.finish`), reported apart. Target: <= 2% per
epoch. Writes bench/tracking.json.

torch and trainlab are imported in main(), not at the top: the tracking helper is a spawned process, which
imports this script as `__mp_main__`, and `trainlab train` does not make it import torch either.
"""
from __future__ import annotations

import argparse
import json
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "digits-mlp.yaml"
TIMES: dict[str, list[float]] = {"fit": [], "fit_cpu": [], "finish": [], "hook": []}


def timed(name: str, fn):
    """Wall time of each call into TIMES[name]; and this process's CPU time (all its threads) into name_cpu."""
    def wrapper(*args, **kwargs):
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            TIMES[name].append(time.perf_counter() - t0)
            TIMES.setdefault(f"{name}_cpu", []).append(time.process_time() - c0)
    return wrapper


def start_server(folder: Path) -> tuple[str, subprocess.Popen]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                             f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination", str(folder / "art"),
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2).close()
            return uri, proc
        except OSError:
            time.sleep(0.5)
    raise SystemExit("mlflow server did not start")


def one_run(uri: str | None, out: Path, overrides: list[str]) -> dict:
    from trainlab.run.config import load_config
    from trainlab.workflows.train import train_run

    for times in TIMES.values():
        times.clear()
    cfg = load_config(CONFIG, [*overrides, f"track.mlflow={uri}", "track.experiment=bench"] if uri else overrides)
    result = train_run(cfg, out, overwrite=True, quiet=True)
    epochs = result["epochs_run"]
    return {"per_epoch_s": TIMES["fit"][0] / epochs, "cpu_per_epoch_s": TIMES["fit_cpu"][0] / epochs,
            "finish_s": sum(TIMES["finish"]), "epochs": epochs,
            "hook_s_per_epoch": sum(TIMES["hook"]) / epochs, "logged": "mlflow" in result}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mlflow", help="tracking URI (default: start a local mlflow server)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, help="train.num_threads (default: the config's, i.e. torch's default)")
    args = p.parse_args()
    overrides = [f"train.num_threads={args.threads}"] if args.threads else []
    import torch

    from trainlab.engine.trainer import Trainer
    from trainlab.observe import tracking

    Trainer.fit = timed("fit", Trainer.fit)
    tracking.Tracking.finish = timed("finish", tracking.Tracking.finish)
    tracking.TrackedRun.__call__ = timed("hook", tracking.TrackedRun.__call__)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        uri, server = (args.mlflow, None) if args.mlflow else start_server(tmp)
        try:
            one_run(None, tmp / "warm", overrides)  # imports and first-call costs out of the comparison
            pairs = []
            for i in range(args.repeats):
                order = (None, uri) if i % 2 == 0 else (uri, None)
                runs = {("on" if u else "off"): one_run(u, tmp / f"r{i}-{'on' if u else 'off'}", overrides)
                        for u in order}
                pairs.append(runs)
                print(f"pair {i + 1}: off {runs['off']['per_epoch_s'] * 1000:.1f} ms/epoch, on "
                      f"{runs['on']['per_epoch_s'] * 1000:.1f} ms/epoch, end wait {runs['on']['finish_s']:.2f} s",
                      flush=True)
        finally:
            if server is not None:
                server.terminate()
                server.wait(30)
    off = [r["off"]["per_epoch_s"] for r in pairs]
    on = [r["on"]["per_epoch_s"] for r in pairs]
    ratios = [b / a for a, b in zip(off, on, strict=True)]
    summary = {"config": "examples/digits-mlp.yaml", "overrides": overrides, "repeats": args.repeats, "pairs": pairs,
               "median_off_ms": statistics.median(off) * 1000, "median_on_ms": statistics.median(on) * 1000,
               "overhead_median_of_ratios": statistics.median(ratios) - 1,
               "overhead_of_medians": statistics.median(on) / statistics.median(off) - 1,
               "cpu_overhead_median_of_ratios": statistics.median(
                   r["on"]["cpu_per_epoch_s"] / r["off"]["cpu_per_epoch_s"] for r in pairs) - 1,
               "per_pair_ratios": [round(x, 3) for x in ratios],
               "hook_us_per_epoch": statistics.median(r["on"]["hook_s_per_epoch"] for r in pairs) * 1e6,
               "end_wait_s": statistics.median(r["on"]["finish_s"] for r in pairs),
               "all_logged": all(r["on"]["logged"] for r in pairs),
               "machine": {"cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
                           "python": platform.python_version(), "torch": torch.__version__}}
    (ROOT / "bench" / "tracking.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "pairs"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
