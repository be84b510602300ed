#!/usr/bin/env bash
# Prepares a wheel folder for `scripts/gpu-check.sh --wheels DIR` on a machine with no network:
# run it where pip can reach the package index, for the Python version of the CUDA machine.
# Torch is left out on purpose: the CUDA machine's own (CUDA) build is used.
#
# Usage: bash scripts/make-wheels.sh --python 3.12 [--out DIR] [--no-gui] [--skip NAME[,NAME...]]
#   --python X.Y  Python version of the target machine (required)
#   --out DIR     wheel folder to fill (default ./wheels)
#   --no-gui      leave out PySide6 and pyqtgraph (the check needs no Qt; PySide6 is ~100 MB)
#   --skip LIST   leave out these distributions too (e.g. numpy,scipy when the target has them)
# Everything is a binary wheel for manylinux x86-64; the project's own dependencies come from
# pyproject.toml ([project] dependencies and the cuda and test extras), with their dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

python_version=""; out="wheels"; no_gui=0; skip=""
while [ $# -gt 0 ]; do
  case "$1" in
    --python) python_version="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --no-gui) no_gui=1; shift ;;
    --skip) skip="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "make-wheels: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$python_version" ] || { echo "make-wheels: --python X.Y is required (the CUDA machine's Python, e.g. 3.12)" >&2; exit 2; }

py=${PYTHON:-python3}
requirements=$("$py" - "$no_gui" "$skip" <<'PY'
import re, sys, tomllib
no_gui, skip = sys.argv[1] == "1", {s.strip().lower() for s in sys.argv[2].split(",") if s.strip()}
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
reqs = list(project["dependencies"])
for extra in ("cuda", "test"):
    reqs += project.get("optional-dependencies", {}).get(extra, [])
leave = {"torch"} | skip | ({"pyside6-essentials", "pyqtgraph", "pytest-qt"} if no_gui else set())
for req in reqs:
    name = re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0].strip().lower()
    if name not in leave:
        print(req.split(";")[0].split("#")[0].strip())
PY
)
mkdir -p "$out"
platforms=""
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms="$platforms --platform $tag"
done
# shellcheck disable=SC2086
"$py" -m pip download --quiet --only-binary=:all: --python-version "$python_version" --implementation cp \
  $platforms -d "$out" $requirements
if [ -n "$skip" ] || [ "$no_gui" = 1 ]; then
  # pip fetched the dependencies of what is kept; drop the skipped ones again.
  for name in ${skip//,/ } $([ "$no_gui" = 1 ] && echo pyside6_essentials shiboken6 pyqtgraph); do
    norm=$(echo "$name" | tr 'A-Z-' 'a-z_')
    find "$out" -maxdepth 1 -iname "${norm}-*.whl" -delete
  done
fi
find "$out" -maxdepth 1 -iname 'torch-*.whl' -delete
echo "make-wheels: $(ls "$out"/*.whl | wc -l) wheels for Python $python_version in $out ($(du -sh "$out" | cut -f1))"
