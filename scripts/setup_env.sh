#!/usr/bin/env bash
# Create .venv with everything the plugin, CLI and tests need, on a fresh Debian/Ubuntu machine.
# torch is pinned here (not in pyproject) so pip takes the local CPU wheel instead of GBs of CUDA wheels;
# users with a GPU install their own torch build first and skip this pin with BLOODSEG_TORCH_SPEC=skip.
# Where no local CPU wheel is found (a stock machine), PyPI's Linux torch is the CUDA build: set
# BLOODSEG_TORCH_INDEX=https://download.pytorch.org/whl/cpu to take torch (only torch) from that index.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${BLOODSEG_VENV:-.venv}
TORCH_SPEC=${BLOODSEG_TORCH_SPEC:-torch==2.13.0}
TORCH_INDEX=${BLOODSEG_TORCH_INDEX:-}
EXTRAS=${1:-testing}

# System libraries napari/Qt need for a real (virtual) X server; installed only when missing.
if ! command -v xvfb-run >/dev/null 2>&1 || ! ldconfig -p | grep -q libxkbcommon-x11; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    xvfb xauth libglib2.0-0 libfontconfig1 libdbus-1-3 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 \
    libxcb-keysyms1 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libgl1 libegl1 >/dev/null
fi

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
if [ "$TORCH_SPEC" != "skip" ] && ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  if [ -n "$TORCH_INDEX" ]; then
    $PIP install --index-url "$TORCH_INDEX" "$TORCH_SPEC"
  else
    $PIP install "$TORCH_SPEC"
  fi
fi
$PIP install -e ".[$EXTRAS]"
