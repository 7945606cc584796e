#!/usr/bin/env bash
# Create .venv and install Parallax with everything the demo and tests need.
# Torch goes first: where a CPU wheel of torch 2.13.0 lies on disk (/opt/wheels) pip takes it,
# otherwise pip chooses the build for this platform.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
STAMP=.venv/.parallax-installed
if [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ]; then exit 0; fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  if ls /opt/wheels/torch-2.13.0*.whl >/dev/null 2>&1; then
    .venv/bin/pip install -q torch==2.13.0
  else
    .venv/bin/pip install -q torch
  fi
fi
.venv/bin/pip install -q -e ".[dev]"
touch "$STAMP"
