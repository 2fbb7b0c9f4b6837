#!/usr/bin/env bash
# Reproduces the shipped site-demo model (hat, vest, worker on synthetic site frames) from nothing.
# The shipped model trained for 3 minutes on one H200 (data/site-device/device.sh ran the same synth
# and train commands there, batch 64, --time-hours 0.045: 20 epochs); on a 2-core CPU give the train
# step --time-hours 1 or more. Usage: bash training/recipes/ship-site-demo.sh [--device 0]
set -euo pipefail
cd "$(dirname "$0")/../.."
source installers/env.sh
T=.venv/bin/inspector-train
# 4000 frames of 200 scenes (20 frames each, 1.5 s apart), 960x540, split by scene.
$T synth data/site-synth --domain site --images 4000 --seed 1
# From the YAML (no pretrained weights), at 480: hats on the farthest workers stay >= ~10 px wide.
$T train --data data/site-synth/data.yaml --model yolo11n.yaml --imgsz 480 --epochs 300 --batch 64 \
    --seed 0 --patience 300 --time-hours 0.045 --project runs --name site-demo "$@"
$T export runs/site-demo/weights/best.pt --out runs/site-demo/export --name site-demo
# Fresh scenes the model never saw (other seed), for the acceptance figures.
$T synth data/site-fresh --domain site --images 400 --seed 99 --val-fraction 0.9  # score 360 of them
$T evaluate runs/site-demo/export/best.onnx data/site-fresh --thresholds hat=0.3,vest=0.3,worker=0.25 \
    --json --out runs/site-demo/eval-fresh > runs/site-demo/eval-fresh.json
TRAIN_HASH=$(.venv/bin/python -c 'import json; print(json.load(open("data/site-synth/manifest.json"))["content_hash"])')
$T models register runs/site-demo/export/best.onnx --name site-demo --classes hat,vest,worker \
    --dataset-hash "$TRAIN_HASH" \
    --metrics runs/site-demo/eval-fresh.json --card training/recipes/site-demo-card.yaml \
    --train-config runs/site-demo/train_spec.json --weights runs/site-demo/weights/best.pt \
    --registry models --reason "shipped demo model" --user inspector-team
$T promote site-demo@1 --registry models --reason "first production model" --user inspector-team
# Version 2: the same weights exported with a dynamic input, so the station letterboxes 16:9 frames to
# 480x288 (rect: true in station_configs/construction-demo.yaml). It cannot beat its own weights, so it is
# promoted as a re-export: within the margins, recorded with its reason.
$T export runs/site-demo/weights/best.pt --out runs/site-demo-dyn --dynamic --name site-demo
$T evaluate runs/site-demo-dyn/weights.onnx data/site-fresh --rect --thresholds hat=0.3,vest=0.3,worker=0.25 \
    --json --out runs/site-demo-dyn/eval-fresh > runs/site-demo-dyn/eval-fresh.json
$T models register runs/site-demo-dyn/weights.onnx --name site-demo --classes hat,vest,worker \
    --dataset-hash "$TRAIN_HASH" --parent site-demo@1 \
    --metrics runs/site-demo-dyn/eval-fresh.json --card training/recipes/site-demo-card.yaml \
    --train-config runs/site-demo/train_spec.json --weights runs/site-demo/weights/best.pt \
    --registry models --reason "version 1's weights with a dynamic input, for the rect letterbox" --user inspector-team
$T promote site-demo@2 --registry models --reexport --margin map50=-0.002 --margin map50_95=-0.002 \
    --candidate-eval runs/site-demo-dyn/eval-fresh.json --production-eval runs/site-demo/eval-fresh.json \
    --reason "rect letterbox: 42 % less inference per 16:9 frame" --user inspector-team
