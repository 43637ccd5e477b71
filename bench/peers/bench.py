"""CPU peer benchmark: one training epoch of the course MLP on MNIST in trainlab and in its peers, interleaved.

    bash bench/peers/run.sh      # creates .venv-peers, installs, runs this, writes results.json + table.md
    .venv-peers/bin/python bench/peers/bench.py --rounds 3 --batch-sizes 64 256 [--data ROOT] [--only keras ...]

Every (framework, batch size) runs in its own fresh process (peers.py; the trainlab CLI row runs `trainlab train`),
in rounds: each round runs every framework once, in a fixed order, both batch sizes, so slow drifts of a shared
machine's load hit all of them alike. Reported per framework: the median epoch time over the rounds and the median of
the per-round ratios to the hand-written PyTorch loop measured in the same round, plus the test accuracy.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VENV = Path(sys.prefix)
DEFAULT_DATA = os.environ.get("TRAINLAB_MNIST_ROOT", str(ROOT.parent / "shared" / "data"))
CLI_CONFIG = HERE / "mnist-mlp-peers.yaml"

# the fixed rotation; pytorch_loop first: every ratio is against it
ORDER = ("pytorch_loop", "torchvision_tutorial", "trainlab_api", "trainlab_cli", "lightning", "keras", "fastai",
         "skorch", "ignite")
LABEL = {
    "pytorch_loop": "hand-written PyTorch loop (reference)",
    "torchvision_tutorial": "PyTorch tutorial pipeline (torchvision MNIST + ToTensor + Normalize + DataLoader)",
    "trainlab_api": "trainlab Python API (`Trainer.fit`)",
    "trainlab_cli": "trainlab CLI (`trainlab train`)",
    "lightning": "PyTorch Lightning (`LightningModule` + `Trainer.fit`)",
    "keras": "Keras 3, torch backend (`model.fit` on numpy)",
    "fastai": "fastai (`Learner.fit`)",
    "skorch": "skorch (`NeuralNetClassifier.fit`)",
    "ignite": "PyTorch-Ignite (`create_supervised_trainer`)",
}
DIST = {"pytorch_loop": "torch", "torchvision_tutorial": "torchvision", "trainlab_api": "trainlab",
        "trainlab_cli": "trainlab", "lightning": "lightning", "keras": "keras", "fastai": "fastai", "skorch": "skorch",
        "ignite": "pytorch-ignite"}
IMPORT = {"pytorch_loop": "torch", "torchvision_tutorial": "torchvision", "trainlab_api": "trainlab.engine.trainer",
          "trainlab_cli": "trainlab", "lightning": "lightning", "keras": "keras", "fastai": "fastai.vision.all",
          "skorch": "skorch", "ignite": "ignite.engine"}
INSTALL_STEP = {"pytorch_loop": "torch", "torchvision_tutorial": "torch", "trainlab_api": "trainlab",
                "trainlab_cli": "trainlab", "lightning": "lightning", "keras": "keras", "fastai": "fastai",
                "skorch": "skorch", "ignite": "ignite"}


def version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def sh(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine(threads: int) -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        mem_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        mem_gb = None
    return {"nproc": sh(["nproc"]), "os_cpu_count": os.cpu_count(), "cpu": cpu, "memory_gb": mem_gb,
            "torch": torch.__version__, "torch_threads_set": threads, "torch_default_threads": torch.get_num_threads(),
            "cuda_visible": False, "python": platform.python_version(), "platform": platform.platform(),
            "loadavg_start": list(os.getloadavg())}


def git_state() -> dict:
    head = sh(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = sh(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])
    return {"commit": head or None, "dirty_tracked_files": len(dirty.splitlines()) if dirty else 0}


def probe(fw: str, env: dict) -> str | None:
    """None when the framework imports in this venv, else a one-line reason."""
    r = subprocess.run([sys.executable, "-c", f"import {IMPORT[fw]}"], capture_output=True, text=True, env=env,
                       timeout=300)
    if r.returncode == 0:
        return None
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    return "import failed: " + (lines[-1] if lines else f"exit code {r.returncode}")


def cli_command(env: dict) -> tuple[list[str] | None, str]:
    """The `trainlab` console script if it works, else `python -m trainlab` (noted in the results)."""
    script = VENV / "bin" / "trainlab"
    if script.exists() and subprocess.run([str(script), "--help"], capture_output=True, env=env).returncode == 0:
        return [str(script)], "trainlab"
    if subprocess.run([sys.executable, "-m", "trainlab", "--help"], capture_output=True, env=env).returncode == 0:
        return [sys.executable, "-m", "trainlab"], ("python -m trainlab (the `trainlab` console script failed "
                                                    "`--help` in this checkout)")
    return None, "neither `trainlab --help` nor `python -m trainlab --help` works in this checkout"


def run_worker(fw: str, args, env: dict) -> dict[int, dict]:
    """peers.py in a fresh process: warm-up epoch, then one timed epoch per batch size -> {batch_size: result}."""
    cmd = [sys.executable, str(HERE / "peers.py"), fw, "--batch-sizes", *map(str, args.batch_sizes),
           "--data", args.data, "--threads", str(args.threads)]
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
        stdout, stderr, rc = r.stdout, r.stderr, r.returncode
    except subprocess.TimeoutExpired as e:
        stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        stderr, rc = f"timed out after {args.timeout} s", None
    wall = time.perf_counter() - t0
    got = {}
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            res = json.loads(line[len("RESULT "):])
            res.update(ok=True, process_wall_s=wall, loadavg_1m_before=load0, loadavg_1m_after=os.getloadavg()[0])
            got[res["batch_size"]] = res
    if len(got) < len(args.batch_sizes):
        tail = [ln for ln in (stderr or stdout).strip().splitlines() if ln.strip()][-3:]
        err = (f"exit code {rc}: " if rc is not None else "") + " | ".join(tail)[-400:]
        for bs in args.batch_sizes:
            got.setdefault(bs, {"ok": False, "error": err})
    return got


def run_cli(bs: int, args, env: dict, cli: list[str], extra: list[str] | None = None) -> dict:
    out = Path(tempfile.mkdtemp(prefix="peers-cli-"))
    cmd = cli + ["train", str(CLI_CONFIG), "train.epochs=1", f"data.batch_size={bs}", f"data.root={args.data}",
                 f"train.num_threads={args.threads}", *(extra or []), "--out", str(out), "--overwrite"]
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        shutil.rmtree(out, ignore_errors=True)
        return {"ok": False, "error": f"timed out after {args.timeout} s"}
    wall = time.perf_counter() - t0
    try:
        if r.returncode != 0:
            tail = [ln for ln in (r.stderr or r.stdout).strip().splitlines() if ln.strip()][-2:]
            err = f"exit code {r.returncode}: " + " | ".join(tail)[-400:]
            if extra is None and "val_fraction" in err:  # a trainlab that refuses val_fraction 0: hold out 10%
                return run_cli(bs, args, env, cli, ["data.val_fraction=0.1"])
            return {"ok": False, "error": err}
        with open(out / "history.csv") as f:
            rows = list(csv.DictReader(f))
        result = json.loads((out / "result.json").read_text())
        splits = json.loads((out / "splits.json").read_text())
        return {"ok": True, "framework": "trainlab_cli", "batch_size": bs, "process_wall_s": wall,
                "epoch_s": float(rows[0]["time"]), "test_acc": float(result["test"]["accuracy"]),
                "n_train": len(splits.get("train", [])), "n_val": len(splits.get("val", []) or []),
                "overrides": extra or [], "loadavg_1m_before": load0, "loadavg_1m_after": os.getloadavg()[0]}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize(results: dict, frameworks: list[str], batch_sizes: list[int]) -> dict:
    """Per framework and batch size: median epoch s, median per-round ratio to the loop, median test accuracy."""
    summary = {}
    for fw in frameworks:
        summary[fw] = {}
        for bs in batch_sizes:
            rounds = results["rounds"]
            own = [r.get(f"{fw}/{bs}", {}) for r in rounds]
            ref = [r.get(f"pytorch_loop/{bs}", {}) for r in rounds]
            ok = [o for o in own if o.get("ok")]
            ratios = [o["epoch_s"] / f["epoch_s"] for o, f in zip(own, ref, strict=True) if o.get("ok") and f.get("ok")]
            entry = {"n_ok": len(ok), "n_rounds": len(rounds),
                     "median_epoch_s": med([o["epoch_s"] for o in ok]),
                     "median_ratio_to_loop": med(ratios), "ratios": ratios,
                     "median_test_acc": med([o["test_acc"] for o in ok]),
                     "paired_ratios": [o["paired_ratio"] for o in ok if o.get("paired_ratio") is not None],
                     "median_paired_ratio": med([o.get("paired_ratio") for o in ok]),
                     "errors": sorted({o["error"] for o in own if o and not o.get("ok")})}
            if fw == "trainlab_cli":
                entry["median_process_s"] = med([o["process_wall_s"] for o in ok])
                entry["median_process_ratio_to_loop_epoch"] = med(
                    [o["process_wall_s"] / f["epoch_s"] for o, f in zip(own, ref, strict=True)
                     if o.get("ok") and f.get("ok")])
                entry["n_train"] = ok[0]["n_train"] if ok else None
            summary[fw][str(bs)] = entry
    return summary


def load_note(results: dict) -> str:
    loads = [v for r in results["rounds"] for res in r.values() if res.get("ok")
             for v in (res.get("loadavg_1m_before"), res.get("loadavg_1m_after")) if v is not None]
    if not loads:
        return "1-minute load average unknown"
    return (f"1-minute load average {min(loads):.1f}-{max(loads):.1f}, median {statistics.median(loads):.1f}, "
            f"sampled around every measurement, on {results['machine']['nproc']} cores")


def spread_note(results: dict) -> str:
    """How far the per-round ratios of one row scatter: (max - min) / median, over rows with 2+ rounds."""
    spreads = [(max(e["ratios"]) - min(e["ratios"])) / e["median_ratio_to_loop"]
               for fw, per_bs in results["summary"].items() if fw != "pytorch_loop"
               for e in per_bs.values() if len(e["ratios"]) >= 2 and e["median_ratio_to_loop"]]
    if not spreads:
        return "one round only: no spread to report"
    return (f"the per-round ratios of a row spread over {100 * statistics.median(spreads):.0f} % of its median "
            f"ratio in the typical row, {100 * max(spreads):.0f} % at most: results.json has every round")


def fmt(x, spec):
    return format(x, spec) if x is not None else "–"


def table(results: dict) -> str:
    s, m, bss = results["summary"], results["machine"], results["config"]["batch_sizes"]
    cfg = results["config"]
    lines = ["# CPU peer benchmark: one MNIST epoch of the course MLP", "",
             "Regenerate with:", "", "```bash", results["command"], "```", "",
             (f"Method: every framework trains the same network (784-196-49-10, ReLU; `nn.Sequential(nn.Flatten(), "
              f"nn.Linear(784,196), nn.ReLU(), nn.Linear(196,49), nn.ReLU(), nn.Linear(49,10))`; for Keras its own "
              f"equivalent `Sequential`) for one epoch over the 60,000 MNIST training images with Adam (lr 1e-3) and "
              f"cross-entropy on the CPU with `torch.set_num_threads({cfg['threads']})`, written the way its own docs "
              f"teach (bench/peers/README.md). Each framework runs in a fresh process per round: imports, MNIST "
              f"loading and building the model/optimizer/trainer objects are untimed; one warm-up epoch (batch "
              f"{max(bss)}, on a model that is then thrown away) is untimed; then for each batch size a fresh model "
              f"trains one epoch, timed around the framework's own fit/run call (the whole call, including whatever "
              f"per-fit setup the framework does), and its test accuracy is measured. Runs are interleaved: "
              f"{cfg['rounds']} rounds, each running every framework once in the fixed order of the table; a "
              f"framework's ratio is the median over rounds of its epoch time divided by the hand-written loop's "
              f"epoch time in the same round (below 1 = faster than the loop). The machine ({m['cpu']}, nproc "
              f"{m['nproc']}) was shared with other work while this ran ({load_note(results)}), so absolute seconds "
              f"are noisy; read the ratios ({spread_note(results)}). The trainlab CLI is timed "
              f"twice: its own epoch time from `history.csv` (a fresh process's first epoch, without a warm-up "
              f"epoch) and the whole `trainlab train` process (interpreter start-up, imports, MNIST decoding, the "
              f"epoch, the test evaluation, checkpoints, plots and report; one uncounted CLI process ran before round "
              f"1), whose ratio is to the loop's epoch time and so is not an epoch-to-epoch comparison. fastai's "
              f"timed `fit` includes its end-of-epoch validation pass over the 10,000 test images (its docs build "
              f"`DataLoaders` from a train and a validation loader). Keras and trainlab also track training accuracy "
              f"during the epoch, Lightning logs the loss with `self.log`; the others compute no metric while "
              f"training. Adam is built as each framework's docs show it; trainlab's `Trainer` builds it with torch's "
              f"fused kernel (`fused=True`), the others get torch's default per-parameter update: at batch 64 (938 "
              f"steps) that kernel is most of trainlab's lead over the loop (the fused step took 0.23 s per 300 "
              f"steps against 0.34 s). Raw per-round numbers, package versions and machine details: "
              f"bench/peers/results.json."), "",
             "| framework | " + " | ".join(f"batch {bs} median s | ratio" for bs in bss)
             + " | test acc (" + " / ".join(f"b{bs}" for bs in bss) + ") | version |",
             "|---|" + "---:|---:|" * len(bss) + "---:|---|"]
    for fw in results["config"]["frameworks"]:
        ver = results["framework_versions"].get(fw) or "–"
        if fw in results["unavailable"]:
            why = results["unavailable"][fw]
            lines.append(f"| {LABEL[fw]} | not run: {why} |" + " |" * (2 * len(bss)) + f" {ver} |")
            continue
        cells = []
        for bs in bss:
            e = s[fw][str(bs)]
            if e["median_epoch_s"] is None:
                cells += [f"failed: {'; '.join(e['errors'])[:200]}" if e["errors"] else "not measured", "–"]
            else:
                flag = "" if e["n_ok"] == e["n_rounds"] else f" ({e['n_ok']}/{e['n_rounds']} rounds)"
                cells += [fmt(e["median_epoch_s"], ".2f") + flag, fmt(e["median_ratio_to_loop"], ".2f")]
        accs = " / ".join(fmt(s[fw][str(bs)]["median_test_acc"], ".4f") for bs in bss)
        name = LABEL[fw] + (" — epoch time from its history.csv" if fw == "trainlab_cli" else "")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {accs} | {ver} |")
        if fw == "trainlab_cli":
            pc = []
            for bs in bss:
                e = s[fw][str(bs)]
                pc += [fmt(e.get("median_process_s"), ".2f"), fmt(e.get("median_process_ratio_to_loop_epoch"), ".2f")]
            lines.append("| trainlab CLI — **whole process** wall time (ratio: to the loop's *epoch*) | "
                         + " | ".join(pc) + f" | (same runs) | {ver} |")
    paired = [fw for fw in results["config"]["frameworks"]
              if fw in s and any(s[fw][str(bs)].get("median_paired_ratio") for bs in bss)]
    if paired:
        lines += ["", "Paired ratios, a cross-check that survives load swings between processes: inside each "
                  "framework's process, a hand-written-loop epoch runs right before and right after the framework's "
                  "timed epoch (same batch size, same process, A-B-A); the ratio is the framework's epoch over the "
                  "mean of the two, median over rounds. The loop's own row shows the noise floor (loop vs loop). The "
                  "CLI row has none (its epoch runs inside `trainlab train`).", "",
                  "| framework | " + " | ".join(f"batch {bs} paired ratio" for bs in bss) + " |",
                  "|---|" + "---:|" * len(bss)]
        for fw in paired:
            lines.append(f"| {LABEL[fw]} | " + " | ".join(fmt(s[fw][str(bs)].get("median_paired_ratio"), ".2f")
                                                         for bs in bss) + " |")
    notes = []
    cli = s.get("trainlab_cli", {}).get(str(bss[0]), {})
    if "trainlab_cli" in s and cli.get("n_train"):
        notes.append(f"The CLI trained on {cli['n_train']:,} images (config `bench/peers/mnist-mlp-peers.yaml`, "
                     f"`data.val_fraction: 0.0`) and evaluated the official 10,000 test images once.")
    if results.get("cli_invocation") and not results["cli_invocation"].startswith("trainlab"):
        notes.append(f"CLI invoked as: {results['cli_invocation']}.")
    if results["config"]["rounds"] < 3:
        notes.append(f"Only {results['config']['rounds']} round(s): medians are from fewer than the intended 3.")
    g0, g1 = results.get("trainlab_git") or {}, results.get("trainlab_git_end") or {}
    if g0.get("commit"):
        moved = "" if g0 == g1 else (f"; at the end: commit {g1.get('commit')}, {g1.get('dirty_tracked_files')} "
                                     f"modified tracked files (the editable install runs whatever the tree holds)")
        notes.append(f"trainlab measured from its working tree at commit {g0['commit']} with "
                     f"{g0['dirty_tracked_files']} modified tracked files at the start{moved}.")
    notes.append(f"Total benchmark time {results['elapsed_s'] / 60:.1f} min; torch {m['torch']}, "
                 f"{cfg['threads']} threads, Python {m['python']}.")
    return "\n".join(lines + [""] + [f"- {n}" for n in notes]) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--data", default=DEFAULT_DATA,
                    help="folder with MNIST/raw in torchvision's layout (default: $TRAINLAB_MNIST_ROOT or "
                         "../shared/data next to the repository)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", nargs="+", choices=ORDER, help="a subset of frameworks (the loop is always included)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per process")
    ap.add_argument("--out", default=str(HERE), help="folder for results.json and table.md")
    ap.add_argument("--table-only", action="store_true",
                    help="only rebuild table.md from the results.json in --out (no measurement)")
    args = ap.parse_args()
    if args.table_only:
        results = json.loads((Path(args.out) / "results.json").read_text())
        md = table(results)
        (Path(args.out) / "table.md").write_text(md)
        print(md)
        return
    args.data = str(Path(args.data).resolve())
    raw = Path(args.data) / "MNIST" / "raw"
    if not all((raw / f).exists() for f in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte")):
        sys.exit(f"error: MNIST not found: expected {raw}/{{train,t10k}}-images-idx3-ubyte; pass --data or set "
                 f"TRAINLAB_MNIST_ROOT")

    frameworks = [fw for fw in ORDER if not args.only or fw in args.only or fw == "pytorch_loop"]
    # CPU only, even on a machine with a GPU; KERAS_BACKEND for the import probe (peers.py sets it for its keras row)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", KERAS_BACKEND="torch")
    t_start = time.perf_counter()
    install_path = VENV / "peers-install.json"
    install = json.loads(install_path.read_text()) if install_path.exists() else {}

    unavailable = {}
    for fw in frameworks:
        reason = probe(fw, env)
        if reason:
            step = install.get(INSTALL_STEP[fw], {})
            if step and not step.get("ok"):
                reason = "pip install failed: " + " ".join(step.get("log_tail", [])[-1:])[:200]
            unavailable[fw] = reason
    cli, cli_how = (None, "")
    if "trainlab_cli" in frameworks and "trainlab_cli" not in unavailable:
        cli, cli_how = cli_command(env)
        if cli is None:
            unavailable["trainlab_cli"] = cli_how

    results = {
        "command": os.environ.get("PEERS_COMMAND") or " ".join([".venv-peers/bin/python", "bench/peers/bench.py",
                                                                *sys.argv[1:]]),
        "config": {"rounds": args.rounds, "batch_sizes": args.batch_sizes, "threads": args.threads,
                   "frameworks": frameworks,
                   "order": "per round: for framework in frameworks (one process: warm-up, then each batch size)",
                   "data": args.data, "cli_config": str(CLI_CONFIG.relative_to(ROOT)), "timeout_s": args.timeout},
        "machine": machine(args.threads), "trainlab_git": git_state(), "cli_invocation": cli_how,
        "framework_versions": {fw: version(DIST[fw]) for fw in frameworks},
        "packages": {d.metadata["Name"]: d.version for d in sorted(metadata.distributions(),
                                                                    key=lambda d: d.metadata["Name"].lower())},
        "install": install, "unavailable": unavailable, "cli_warmup": None, "rounds": [],
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def save():
        (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")

    for fw, why in unavailable.items():
        print(f"[peers] {fw}: not run: {why}", flush=True)
    if cli is not None:  # the CLI row's warm-up: one uncounted process (file cache, bytecode, first-run costs)
        print("[peers] trainlab CLI warm-up process (not counted) ...", flush=True)
        results["cli_warmup"] = run_cli(args.batch_sizes[0], args, env, cli)
    for rnd in range(args.rounds):
        rec = {}
        results["rounds"].append(rec)
        for fw in frameworks:
            if fw in unavailable:
                continue
            if fw == "trainlab_cli":  # whole-process timing: one `trainlab train` process per batch size
                got = {bs: run_cli(bs, args, env, cli) for bs in args.batch_sizes}
            else:
                got = run_worker(fw, args, env)
            for bs in args.batch_sizes:
                res = rec[f"{fw}/{bs}"] = got[bs]
                msg = (f"epoch {res['epoch_s']:.2f} s  test acc {res['test_acc']:.4f}" if res.get("ok")
                       else "FAILED " + res["error"])
                if fw == "trainlab_cli" and res.get("ok"):
                    msg += f"  whole process {res['process_wall_s']:.2f} s"
                print(f"[peers] round {rnd + 1}/{args.rounds}  batch {bs:>4}  {fw:<22} {msg}  "
                      f"({(time.perf_counter() - t_start) / 60:.1f} min)", flush=True)
            save()
    results["machine"]["loadavg_end"] = list(os.getloadavg())
    results["trainlab_git_end"] = git_state()  # the editable install follows the working tree: did it move?
    results["elapsed_s"] = time.perf_counter() - t_start
    results["summary"] = summarize(results, [f for f in frameworks if f not in unavailable], args.batch_sizes)
    save()
    md = table(results)
    (out / "table.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
