#!/usr/bin/env bash
# The CUDA half of reconstruct, checked in one go on a machine with an NVIDIA GPU:
#   1. env           Python, torch, CUDA device, the GL renderer EGL gives
#   2. nvdiffrast    builds nvdiffrast's CUDA plugin (first use compiles it) and makes a context
#   3. tests         every CUDA-marked test under tests/render and tests/recon
#   4. bench-render  reconstruct bench render --device cuda --json (2.5K / 326K / 2M triangles)
#   5. bench-viewer  reconstruct bench viewer --size 1920x1080 --json (every available path)
#   6. demo          reconstruct demo --device cuda (CUDA defaults: full resolution, paper schedule)
#   7. lego          reconstruct run DATA/nerf-synthetic-lego --holdout 10, then eval on those views
# and writes OUT/report.json (each step's status, seconds and numbers) and OUT/logs/STEP.log.
#
# Usage: bash scripts/gpu-check.sh [--out DIR] [--wheels DIR] [--data DIR] [--budget S]
#                                  [--lego-iterations N] [--only STEP[,STEP...]]
#   --out DIR      where the report, logs and run folders go (default ./gpu-check-out)
#   --wheels DIR   install the missing Python packages from these wheels, offline (pip --no-index
#                  --no-deps, into OUT/site; nothing else in the environment changes); make the
#                  folder with scripts/make-wheels.sh on a machine with network
#   --data DIR     folder holding nerf-synthetic-lego (default ../shared/data)
#   --budget S     seconds for the whole check (default 480); each step gets what is left
#   --lego-iterations N   length of the lego run (default 1000)
#   --only LIST    run only these steps (env always runs)
# Uses the environment's own python3 (or $PYTHON) and its torch; the project runs from this
# checkout (PYTHONPATH), so it needs no install. Exit status: 0 when every step passed, 1 when one
# failed, 3 when there is no CUDA device.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

out="gpu-check-out"; wheels=""; data="../shared/data"; budget=480; lego_iterations=1000; only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --wheels) wheels="$2"; shift 2 ;;
    --data) data="$2"; shift 2 ;;
    --budget) budget="$2"; shift 2 ;;
    --lego-iterations) lego_iterations="$2"; shift 2 ;;
    --only) only=",$2,"; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
py=${PYTHON:-python3}
mkdir -p "$out/logs"
out=$(cd "$out" && pwd)
data=$(cd "$data" 2>/dev/null && pwd || echo "$data")
: > "$out/steps.tsv"
start=$(date +%s)
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

if [ -n "$wheels" ]; then
  # Install each wheel whose distribution is missing, without resolving dependencies: the
  # environment's own torch, numpy and scipy stay as they are.
  missing=$("$py" - "$wheels" <<'PY'
import sys
from importlib import metadata
from pathlib import Path
for wheel in sorted(Path(sys.argv[1]).glob("*.whl")):
    name = wheel.name.split("-")[0]
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        print(wheel)
PY
)
  if [ -n "$missing" ]; then
    echo "gpu-check: installing into $out/site: $(echo "$missing" | xargs -n1 basename | tr '\n' ' ')"
    # shellcheck disable=SC2086
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$out/site" $missing \
      > "$out/logs/install.log" 2>&1 || { echo "gpu-check: installing the wheels failed, see $out/logs/install.log" >&2; exit 1; }
  fi
  export PYTHONPATH="$out/site:$PYTHONPATH"
fi

if ! "$py" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" > "$out/logs/cuda.log" 2>&1; then
  echo "gpu-check: no CUDA device (torch.cuda.is_available() is False, or torch does not import; see $out/logs/cuda.log): nothing to check" >&2
  exit 3
fi

# step NAME SECONDS COMMAND...: runs COMMAND with what is left of the budget (at most SECONDS),
# logs to OUT/logs/NAME.log and records "NAME rc seconds" in OUT/steps.tsv.
step() {
  local name=$1 limit=$2; shift 2
  if [ -n "$only" ] && [ "$name" != env ] && [[ "$only" != *",$name,"* ]]; then return 0; fi
  local left=$((budget - ($(date +%s) - start)))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -le 5 ]; then
    printf '%s\t%s\t%s\n' "$name" skipped 0 >> "$out/steps.tsv"
    echo "gpu-check: $name skipped (budget spent)"
    return 0
  fi
  local t0; t0=$(date +%s%N)
  timeout --kill-after=10 "$limit" "$@" > "$out/logs/$name.log" 2>&1
  local rc=$?
  local ms=$((($(date +%s%N) - t0) / 1000000))
  printf '%s\t%s\t%d.%03d\n' "$name" "$rc" $((ms / 1000)) $((ms % 1000)) >> "$out/steps.tsv"
  echo "gpu-check: $name rc=$rc ($((ms / 1000)) s)$([ "$rc" = 124 ] && echo ', timed out')"
}

cli() { "$py" -m recon.cli "$@"; }

step env 60 "$py" - <<'PY'
import json, platform, torch
info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0), "capability": list(torch.cuda.get_device_capability(0))}
try:
    import moderngl
    ctx = moderngl.create_standalone_context(backend="egl", require=430)
    info["gl_renderer"] = ctx.info["GL_RENDERER"]
    ctx.release()
except Exception as exc:
    info["gl_renderer"] = f"none: {exc}"
print(json.dumps(info))
PY
step nvdiffrast 420 "$py" -c "
import logging, time
from render.backends.nvdiffrast import NvdiffrastRasterizer
logging.basicConfig(level=logging.INFO)
t = time.perf_counter(); NvdiffrastRasterizer(); print(f'nvdiffrast context in {time.perf_counter() - t:.1f} s')"
# Without a working nvdiffrast (its plugin failed to build) the rest runs on the GL rasterizer,
# instead of every process trying to build the plugin again.
renderer=auto
grep -q "^nvdiffrast	[1-9]" "$out/steps.tsv" && renderer=gl && echo "gpu-check: nvdiffrast failed; the rest uses --renderer gl"
step tests 300 "$py" -m pytest -m cuda tests/render tests/recon -q -rs -p no:cacheprovider -o addopts="" \
  --import-mode=importlib --junitxml "$out/tests.xml"
step bench-render 150 bash -c "$(declare -f cli); py='$py'; cli bench render --device cuda --renderer $renderer --json > '$out/bench-render.json'"
step bench-viewer 120 bash -c "$(declare -f cli); py='$py'; cli bench viewer --size 1920x1080 --json > '$out/bench-viewer.json'"
step demo 300 "$py" -m recon.cli demo --device cuda --renderer "$renderer" --profile --out "$out/demo" --cache "$out/demo-cache"
step lego 300 bash -c "$(declare -f cli); py='$py'; set -e
  cli run '$data/nerf-synthetic-lego' --out '$out/lego' --overwrite --holdout 10 --device cuda --renderer $renderer --iterations $lego_iterations
  cli eval '$out/lego' --views '$data/nerf-synthetic-lego' --json > '$out/lego-eval.json'"

"$py" - "$out" "$((budget))" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def read(name):
    try:
        return json.loads((out / name).read_text())
    except (OSError, ValueError):
        return None
steps = {}
for line in (out / "steps.tsv").read_text().splitlines():
    name, rc, secs = line.split("\t")
    steps[name] = {"status": "passed" if rc == "0" else ("skipped" if rc == "skipped" else f"failed (exit {rc})"),
                   "seconds": round(float(secs), 1)}
env_log = (out / "logs" / "env.log")
report = {
    "environment": json.loads(env_log.read_text().splitlines()[-1]) if env_log.exists() and env_log.read_text().strip() else None,
    "steps": steps,
    "tests": None, "bench_render": read("bench-render.json"), "bench_viewer": read("bench-viewer.json"),
    "demo": read("demo/run.json"), "lego": read("lego/run.json"), "lego_eval": read("lego-eval.json"),
}
xml = out / "tests.xml"
if xml.exists():
    import xml.etree.ElementTree as ET
    suite = ET.parse(xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    report["tests"] = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
for key in ("demo", "lego"):  # keep the figures, not the whole history
    if report[key]:
        report[key] = {k: report[key][k] for k in ("seconds", "iteration", "mesh", "chamfer", "device", "renderer",
                                                     "profile", "config", "dataset") if k in report[key]}
(out / "report.json").write_text(json.dumps(report, indent=1))
failed = [n for n, s in steps.items() if s["status"].startswith("failed")]
print(f"gpu-check: report in {out / 'report.json'}; " + (f"failed: {', '.join(failed)}" if failed else "all steps passed"))
sys.exit(1 if failed else 0)
PY
