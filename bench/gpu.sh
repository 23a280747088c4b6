#!/usr/bin/env bash
# GPU figures for docs/scaling.md in at most 5 minutes (bench/gpu.py says what it measures).
# Usage, from the repository root on a GPU machine with endopat installed (make install TORCH=...):
#   bash bench/gpu.sh            # or: bash bench/gpu.sh --device cpu --quick   (a dry run of every path)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not found"
timeout 300 "$PY" bench/gpu.py "$@"
