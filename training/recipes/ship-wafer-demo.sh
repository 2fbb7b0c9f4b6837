#!/usr/bin/env bash
# Reproduces the shipped wafer-demo model from nothing (about 55 min on a 2-core CPU; minutes on a GPU).
# Usage: bash training/recipes/ship-wafer-demo.sh [--device 0]
set -euo pipefail
cd "$(dirname "$0")/../.."
source installers/env.sh
T=.venv/bin/inspector-train
$T synth data/wafer-synth-320 --images 1000 --seed 1 --die-px 320
# Dies have no up or down, so vertical flips are fair augmentation.
# Stage 1: from the YAML (no pretrained weights). Stage 2: fine-tune stage 1's best checkpoint, as a
# quality engineer retrains from the production model (see training/RESULTS.md for how the shipped
# model's stage 1 differed).
$T train --data data/wafer-synth-320/data.yaml --model yolo11n.yaml --imgsz 320 --epochs 30 \
    --batch 16 --seed 0 --patience 30 --set flipud=0.5 --project runs --name wafer-demo-stage1 "$@"
$T train --data data/wafer-synth-320/data.yaml --model runs/wafer-demo-stage1/weights/best.pt --imgsz 320 \
    --epochs 25 --batch 16 --seed 0 --patience 30 --set flipud=0.5 --project runs --name wafer-demo "$@"
$T export runs/wafer-demo/weights/best.pt --out runs/wafer-demo/export --name wafer-demo
# A fresh lot the model never saw (other seed), for the acceptance figure (mAP50 >= 0.90).
$T synth data/wafer-fresh-320 --images 300 --seed 99 --die-px 320 --val-fraction 0.9  # score 270 of them
# PyTorch weights against their ONNX export through the station runtime (must agree within 0.5 point)...
$T evaluate runs/wafer-demo/weights/best.pt data/wafer-fresh-320 --config station_configs/wafer-demo.yaml \
    --json --out runs/wafer-demo/eval-fresh-pt > runs/wafer-demo/eval-fresh-pt.json
# ...and the acceptance figure of the exact ONNX bytes that get registered.
$T evaluate runs/wafer-demo/export/best.onnx data/wafer-fresh-320 --config station_configs/wafer-demo.yaml \
    --json --out runs/wafer-demo/eval-fresh > runs/wafer-demo/eval-fresh.json
TRAIN_HASH=$(.venv/bin/python -c 'import json; print(json.load(open("data/wafer-synth-320/manifest.json"))["content_hash"])')
$T models register runs/wafer-demo/export/best.onnx --name wafer-demo --data data/wafer-synth-320/data.yaml \
    --dataset-hash "$TRAIN_HASH" \
    --metrics runs/wafer-demo/eval-fresh.json --card training/recipes/wafer-demo-card.yaml \
    --train-config runs/wafer-demo/train_spec.json --weights runs/wafer-demo/weights/best.pt \
    --registry models --reason "shipped demo model" --user inspector-team
$T promote wafer-demo@1 --registry models --reason "first production model" --user inspector-team
