"""The package's layers, read from the code: imports point down, no cycles, imports at the top, small files.

The layers (docs/architecture.md): core < data, models < engine, diagnose < observe, run < workflows, use < cli.
A module may import its own package and packages of a lower rank; no module imports the root `trainlab`
package (it sits on top: its `Trainer` and `load_run` import the layers). An import inside a function must
say why on its line (start-up time, or an optional heavy dependency), and it counts for cycles like any
other: no two modules import each other, however late. One same-rank door (SEAMS): engine reaches diagnose
only through `diagnose/seam.py`, and diagnose never imports engine. argparse and its `args` namespace stay in `cli/`:
every lower-layer entry point takes typed arguments. The checker below runs on the real tree and on planted
bad trees.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "trainlab"
RANK = {"core": 0, "data": 1, "models": 1, "engine": 2, "diagnose": 2, "observe": 3, "run": 3, "workflows": 4,
        "use": 4, "cli": 5}
SEAMS = {("engine", "diagnose"): ("trainlab.diagnose.seam",)}  # (importer, imported): the one module it may import
MAX_LINES = 400
REASONS = ("start-up time", "optional heavy dependency", "doctor must")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str | None:
    """'trainlab.data.prepare' -> 'data'; the root package and __main__ have no layer (they sit on top)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANK else None


def imports_of(path: Path, root: Path = SRC) -> list[tuple[str, int, str]]:
    """(imported trainlab module, line, source line) for every trainlab import in a file, inside functions too."""
    tree = ast.parse(path.read_text())
    lines = path.read_text().splitlines()
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "trainlab":
            names = [f"{node.module}.{a.name}" for a in node.names]
            targets = [n if _is_module(n, root) else node.module for n in names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names if a.name.split(".")[0] == "trainlab"]
        else:
            continue
        for t in dict.fromkeys(targets):
            out.append((t, node.lineno, lines[node.lineno - 1]))
    return out


def _is_module(dotted: str, root: Path) -> bool:
    rel = Path(*dotted.split(".")[1:])
    return (root / rel).with_suffix(".py").is_file() or (root / rel / "__init__.py").is_file()


def function_imports(path: Path) -> list[tuple[int, str]]:
    """(line, text) of imports inside functions that give no reason on their line."""
    tree, lines = ast.parse(path.read_text()), path.read_text().splitlines()
    bad = []
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    text = " ".join(lines[node.lineno - 1: node.end_lineno])
                    if not any(r in text for r in REASONS):
                        bad.append((node.lineno, text.strip()))
    return bad


def check_layers(root: Path) -> list[str]:
    """Every violation in the package at `root`: upward or sideways imports, cycles (imports inside functions
    included), unexplained local imports, argparse or an `args.` namespace outside cli/."""
    problems, graph = [], {}
    for path in sorted(root.rglob("*.py")):
        mod = module_name(path, root)
        graph[mod] = set()
        for target, line, text in imports_of(path, root):
            where = f"{path.relative_to(root.parent)}:{line}"
            src_layer, dst_layer = layer_of(mod), layer_of(target)
            if dst_layer is None and src_layer is not None:
                problems.append(f"{where}: {mod} imports the root package ({text.strip()})")
            elif (src_layer and dst_layer and src_layer != dst_layer and RANK[dst_layer] >= RANK[src_layer]
                  and target not in SEAMS.get((src_layer, dst_layer), ())):
                problems.append(f"{where}: {src_layer} (rank {RANK[src_layer]}) imports {dst_layer} "
                                f"(rank {RANK[dst_layer]}): {target}")
            graph[mod].add(target)
        problems += [f"{path.relative_to(root.parent)}:{n}: import inside a function without a reason: {t}"
                     for n, t in function_imports(path)]
        if layer_of(mod) != "cli":
            problems += [f"{path.relative_to(root.parent)}:{n}: {what} outside cli/" for n, what in argparse_uses(path)]
    problems += [f"import cycle: {' -> '.join(c)}" for c in cycles(graph)]
    return problems


def argparse_uses(path: Path) -> list[tuple[int, str]]:
    """(line, what) for each `import argparse` and each `args.<name>` (an argparse namespace handed down)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "argparse" for a in node.names) or \
                isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "argparse":
            found.append((node.lineno, "argparse imported"))
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "args":
            found.append((node.lineno, f"args.{node.attr} (a command-line namespace)"))
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Cycles among imports, at the top of a module or inside a function (one that runs later still closes a
    circle: the two modules cannot be understood, tested or moved apart)."""
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_the_package_has_no_upward_import_no_cycle_no_unexplained_local_import_and_argparse_only_in_cli():
    assert check_layers(SRC) == []


def test_every_package_is_a_known_layer_and_files_stay_small():
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == set(RANK)
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "trainlab"
    for rel, text in {"__init__.py": "", **{f"{k}/__init__.py": "" for k in RANK}, **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_a_planted_upward_import_is_caught(tmp_path):
    root = _plant(tmp_path, {"core/bad.py": "from trainlab.cli.main import main\n", "cli/main.py": "def main(): ...\n"})
    problems = check_layers(root)
    assert len(problems) == 1 and "core (rank 0) imports cli (rank 5)" in problems[0], problems


def test_a_planted_sideways_import_between_data_and_models_is_caught(tmp_path):
    root = _plant(tmp_path, {"data/x.py": "from trainlab.models import y\n", "models/y.py": ""})
    assert any("data (rank 1) imports models (rank 1)" in p for p in check_layers(root))


def test_engine_reaches_diagnose_only_through_its_seam_and_diagnose_never_imports_engine(tmp_path):
    root = _plant(tmp_path, {"engine/t.py": "from trainlab.diagnose.seam import Guide\n",
                             "engine/u.py": "from trainlab.diagnose.guide import Guide\n",
                             "diagnose/seam.py": "", "diagnose/guide.py": "from trainlab.engine.t import x\n"})
    problems = check_layers(root)
    assert len(problems) == 2, problems
    assert "diagnose/guide.py:1: diagnose (rank 2) imports engine (rank 2)" in problems[0]
    assert "engine/u.py:1: engine (rank 2) imports diagnose (rank 2): trainlab.diagnose.guide" in problems[1]


def test_a_planted_cycle_is_caught(tmp_path):
    root = _plant(tmp_path, {"data/a.py": "from trainlab.data.b import g\ndef f(): ...\n",
                             "data/b.py": "from trainlab.data.a import f\ndef g(): ...\n"})
    assert check_layers(root) == ["import cycle: trainlab.data.a -> trainlab.data.b -> trainlab.data.a"]


def test_a_planted_unexplained_import_inside_a_function_is_caught(tmp_path):
    root = _plant(tmp_path, {"engine/t.py": "def f():\n    import json\n    return json\n",
                             "engine/u.py": "def f():\n    import json  # start-up time: fine\n    return json\n"})
    assert check_layers(root) == ["trainlab/engine/t.py:2: import inside a function without a reason: import json"]


def test_a_planted_cycle_through_an_import_inside_a_function_is_caught(tmp_path):
    """The catalog imports its family lazily, the family imports its options back from the catalog: a circle."""
    root = _plant(tmp_path, {"models/catalog.py": "class Opts: ...\ndef build():\n"
                                                  "    from trainlab.models import fam  # start-up time\n",
                             "models/fam.py": "from trainlab.models.catalog import Opts\n"})
    assert check_layers(root) == ["import cycle: trainlab.models.catalog -> trainlab.models.fam -> "
                                  "trainlab.models.catalog"]


def test_a_planted_import_of_the_root_package_is_caught(tmp_path):
    root = _plant(tmp_path, {"run/d.py": "from trainlab import __version__\n"})
    assert check_layers(root) == ["trainlab/run/d.py:1: trainlab.run.d imports the root package "
                                  "(from trainlab import __version__)"]


def test_planted_argparse_and_args_namespace_outside_cli_are_caught(tmp_path):
    root = _plant(tmp_path, {"workflows/w.py": "import argparse\ndef run(args: argparse.Namespace) -> int:\n"
                                               "    return args.folds\n",
                             "cli/c.py": "import argparse\ndef handler(args) -> int:\n    return args.folds\n"})
    assert check_layers(root) == ["trainlab/workflows/w.py:1: argparse imported outside cli/",
                                  "trainlab/workflows/w.py:3: args.folds (a command-line namespace) outside cli/"]


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["list"], ["train", "--help"],
                                  ["train", "examples/digits-mlp.yaml", "train.epoch=3"]])
def test_the_cli_answers_without_importing_torch(argv):
    """--help, --version, list, COMMAND --help and config errors: torch is never imported (start-up time)."""
    code = ("import sys\nfrom trainlab.cli.main import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'pandas', 'torchvision'))\n"
            "print('HEAVY', bad)")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=root, timeout=60)
    assert "HEAVY []" in out.stdout, (out.stdout[-500:], out.stderr[-500:])
