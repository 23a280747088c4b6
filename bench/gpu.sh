#!/usr/bin/env bash
# GPU figures for docs/scaling.md in at most 8 minutes (bench/gpu.py and bench/encoders.py say what they measure).
# Usage, from the repository root on a GPU machine with endopat installed (make install TORCH=...):
#   bash bench/gpu.sh            # or: bash bench/gpu.sh --device cpu --quick   (a dry run of every path)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not found"
timeout 300 "$PY" bench/gpu.py "$@"
# the architectures, foundation families included (issue 23): train img/s, inference frames/s, peak memory
if [[ " $* " != *" --quick "* ]]; then
  DEV=$( [[ " $* " == *" --device cpu "* ]] && echo cpu || echo cuda )
  timeout 300 "$PY" bench/encoders.py --device "$DEV" --batch 8 --reps 3 --sizes 224x224,512x640 \
    --archs basic_unet,resnet50,vit_s14,vit_b14,vit_l14,vit_b16,vit_s16_dinov3,vit_b16_dinov3,vit_l16_dinov3,convnext_tiny,convnextv2_tiny,convnext_large,pvt_v2_b2,caformer_s18_relu
fi
