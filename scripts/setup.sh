#!/usr/bin/env bash
# Installs what is missing for reconstruct on a Debian/Ubuntu machine, idempotently:
#   system GL/X libraries (Mesa EGL, Xvfb for tests and headless GUI), a virtual environment in
#   .venv, PyTorch first (so a pinned local CPU build is used where one exists), then the package.
# Usage: bash scripts/setup.sh [--test]     (--test also installs the test tools)
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[ "${1:-}" = "--test" ] && extras="[test,cluster]"  # the tests run `reconstruct batch` on a local Ray

# Shared libraries Qt (xcb), moderngl (EGL/GLX, Mesa's software rasterizer) and tests (Xvfb) need.
apt_packages="xvfb xauth libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libglx-mesa0 libopengl0
  libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0
  libxcb-shape0 libxcb-randr0 libxcb-xinerama0 libfontconfig1 libdbus-1-3"
missing=$(for p in $apt_packages; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "setup: installing system packages:" $missing
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    echo "setup: please install these system packages (as root): $missing" >&2
  fi
fi

py=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$py" -m venv .venv
pip=".venv/bin/python -m pip"
$pip install -q --upgrade pip >/dev/null 2>&1 || true
# torch before the rest: the pinned version resolves to a local CPU wheel where one is provided,
# and to the normal (CUDA) build elsewhere.
.venv/bin/python -c "import torch" 2>/dev/null || $pip install -q "torch==2.13.0" || $pip install -q torch
$pip install -q -e ".$extras"
# The Khronos glTF validator, for the export tests (npm's registry; skipped with a reason without npm).
if [ "${1:-}" = "--test" ] && command -v npm >/dev/null && [ ! -d .tools/node_modules/gltf-validator ]; then
  npm install --silent --no-audit --no-fund --prefix .tools gltf-validator@2.0.0-dev.3.10 >/dev/null 2>&1 \
    || echo "setup: could not install gltf-validator with npm; its tests will be skipped" >&2
fi
echo "setup: ready (.venv)"
