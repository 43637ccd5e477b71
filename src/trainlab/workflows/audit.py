"""`trainlab audit CONFIG`: the data audit of a configured data set, split exactly as `trainlab train` splits it.

    trainlab audit examples/csv-classification.yaml data.path=table.csv --out runs/table-audit

Finds near-duplicates across splits (a leak), conflicting labels, outliers, label issues, shift between the
splits and image problems (data/audit*.py), writes OUT/audit.html (observe/audit_page.py) and returns the
result the CLI writes to OUT/result.json. `trainlab audit RUN` (use/audit.py) does the same with the model's
embeddings. `cheap_run_audit` is the part `trainlab train` runs before training.
"""
from __future__ import annotations

from pathlib import Path

from trainlab.core.files import write_json
from trainlab.data.audit import audit_input
from trainlab.data.audit_full import cheap_audit, full_audit, public
from trainlab.data.base import ArrayDataset
from trainlab.data.prepare import load_data
from trainlab.observe.audit_page import write_audit
from trainlab.run.config import Config

CHEAP_LIMIT = 200_000  # samples above which train skips the audit (its neighbour search grows as N^2)
CHEAP_FILES = 20_000  # image files above which train skips it (as it skips hashing files for the leakage check)


def audit_config(cfg: Config, out: Path, config_name: str = "", progress: bool = True) -> dict:
    """Audit `cfg`'s data; writes out/audit.html and returns the result for out/result.json."""
    data = audit_input(load_data(cfg), progress)
    result = full_audit(data, progress=progress)
    return write_audit(out, f"trainlab audit {config_name or cfg.data.name}", result, data,
                       {"dataset": cfg.data.name, "config": config_name, "seed": cfg.seed})


def cheap_run_audit(data, run_dir: Path) -> dict | None:
    """`trainlab train`: near-duplicates across splits and conflicting labels, written to RUN_DIR/audit.json
    (the report shows it); None for data the audit does not read (texts, series) or too large to search."""
    bundle = data.bundle
    n = len(bundle.pool) + (len(bundle.test) if bundle.test is not None else 0)
    if bundle.kind not in ("image", "tabular") or n > CHEAP_LIMIT:
        return None
    if not isinstance(bundle.pool, ArrayDataset) and n > CHEAP_FILES:
        return None  # image files would all be decoded once more before training: `trainlab audit` does that
    audited = audit_input(data, progress=False)
    result = public(cheap_audit(audited), audited)
    write_json(Path(run_dir) / "audit.json", result)
    return result


def summary_lines(result: dict, shown: int = 8) -> list[str]:
    """The console summary: counts per type, the worst findings with what to do, where the page is."""
    counts = result["counts"]
    sizes = ", ".join(f"{s} {n}" for s, n in result["sizes"].items() if n)
    if not counts:
        lines = [f"audit ({sizes}): no findings"]
    else:
        lines = [f"audit ({sizes}): " + ", ".join(f"{n} {t.replace('_', ' ')}" for t, n in counts.items())]
        lines += [f"  {f['type']}: {f['message']}" for f in result["findings"][:shown]]
        if len(result["findings"]) > shown:
            lines.append(f"  ... {sum(counts.values()) - shown} more in result.json and audit.html")
    if result.get("page"):
        lines.append(f"wrote {result['page']}")
    return lines


def audit_lines(result: dict | None, shown: int = 3) -> list[str]:
    """What `trainlab train` prints of its cheap audit: nothing when it found nothing."""
    if not result or not result["counts"]:
        return []
    counts = ", ".join(f"{n} {t.replace('_', ' ')}" for t, n in result["counts"].items())
    lines = [f"warning: data audit: {counts} (RUN/audit.json, report.html; the full audit: trainlab audit CONFIG)"]
    return lines + [f"  {f['message']}" for f in result["findings"][:shown]]
