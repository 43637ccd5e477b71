#!/usr/bin/env bash
# Creates .venv-peers at the repo root (separate from trainlab's own .venv) and installs torch, torchvision,
# trainlab (editable) and each peer framework. A peer that fails to install is recorded, not fatal.
# Writes .venv-peers/peers-install.json (status, seconds, MB added, log tail per step); bench.py copies it
# into results.json.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
VENV="${PEERS_VENV:-$ROOT/.venv-peers}"
PY="$VENV/bin/python"
LOGDIR="$VENV/install-logs"
STATUS="$VENV/peers-install.json"

if [ ! -x "$PY" ]; then
  python3 -m venv "$VENV" || { echo "error: python3 -m venv $VENV failed" >&2; exit 1; }
  "$PY" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
fi
# Keep the venv out of git even where .gitignore does not list it (python -m venv does the same from Python 3.13).
[ -f "$VENV/.gitignore" ] || printf '# created by bench/peers/install.sh\n*\n' > "$VENV/.gitignore"
mkdir -p "$LOGDIR"
[ -f "$STATUS" ] || echo '{}' > "$STATUS"

site_mb() { du -sm "$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" | cut -f1; }

# step NAME STAMP-ONLY-ON-SUCCESS PIP-ARGS...
step() {
  local name="$1"; shift
  local stamp="$VENV/.installed-$name" key="${STAMP_KEY:-}"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then echo "[install] $name: already installed"; return 0; fi
  echo "[install] $name: pip install $*"
  local before after t0 t1 rc
  before=$(site_mb); t0=$(date +%s.%N)
  "$PY" -m pip install "$@" >"$LOGDIR/$name.log" 2>&1; rc=$?
  t1=$(date +%s.%N); after=$(site_mb)
  if [ $rc -eq 0 ]; then printf '%s' "$key" > "$stamp"; echo "[install] $name: ok"; else echo "[install] $name: FAILED (rc $rc), see $LOGDIR/$name.log"; fi
  "$PY" - "$STATUS" "$name" "$rc" "$t0" "$t1" "$before" "$after" "$LOGDIR/$name.log" "$*" <<'PYEOF'
import json, sys
path, name, rc, t0, t1, before, after, log, args = sys.argv[1:]
data = json.load(open(path))
tail = open(log, errors="replace").read().strip().splitlines()[-6:]
old = data.get(name, {})
data[name] = {"ok": rc == "0", "rc": int(rc), "seconds": round(float(t1) - float(t0), 1),
              "site_packages_mb_added": int(after) - int(before), "site_packages_mb_after": int(after),
              "pip_args": args, "log_tail": tail}
first = old.get("first_successful_install") or ({k: v for k, v in old.items() if k != "log_tail"} if old.get("ok")
                                                 else None)
if first:  # a reinstall (pyproject.toml changed) keeps the first install's time and size
    data[name]["first_successful_install"] = first
json.dump(data, open(path, "w"), indent=2)
PYEOF
  return $rc
}

step torch torch torchvision || { echo "error: torch/torchvision did not install; nothing to benchmark" >&2; exit 1; }
# Keep every later install on the torch that was just installed (a peer that needs another torch fails visibly).
# (distribution versions, not torch.__version__, which may carry a local tag such as +cu130)
"$PY" -c 'from importlib.metadata import version as v; print("torch==" + v("torch")); print("torchvision==" + v("torchvision"))' > "$VENV/torch-constraints.txt"
# trainlab is reinstalled whenever pyproject.toml changes (new dependencies), like the Makefile's .venv
STAMP_KEY="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)" \
  step trainlab -c "$VENV/torch-constraints.txt" -e "$ROOT" || echo "[install] trainlab failed: its rows will say so"
step lightning -c "$VENV/torch-constraints.txt" lightning
step keras -c "$VENV/torch-constraints.txt" keras
step fastai -c "$VENV/torch-constraints.txt" fastai
step skorch -c "$VENV/torch-constraints.txt" skorch
step ignite -c "$VENV/torch-constraints.txt" pytorch-ignite
echo "[install] site-packages: $(site_mb) MB"
exit 0
