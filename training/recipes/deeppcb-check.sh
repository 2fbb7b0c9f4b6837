#!/usr/bin/env bash
# DeepPCB real-data check: plain test image against a reference-aware input (the template and the
# absolute difference as extra channels), same split, same training budget. Research data: the
# datasets and runs stay under data/ and runs/ (git-ignored) and are never shipped.
# Usage: bash training/recipes/deeppcb-check.sh [EPOCHS] [IMGSZ] [extra train options, e.g. --device 0]
set -euo pipefail
cd "$(dirname "$0")/../.."
source installers/env.sh
T=.venv/bin/inspector-train
EPOCHS="${1:-10}"; shift || true
IMGSZ="${1:-640}"; shift || true
SRC=../shared/data/deeppcb
for MODE in plain diff; do
  [ -f data/deeppcb-$MODE/data.yaml ] || \
    $T dataset data/deeppcb-$MODE --from-deeppcb $SRC --deeppcb-mode $MODE --val-fraction 0.1 --seed 0
  $T train --data data/deeppcb-$MODE/data.yaml --model yolo11n.yaml --imgsz "$IMGSZ" --epochs "$EPOCHS" --batch 16 \
      --seed 0 --patience 50 --project runs --name deeppcb-$MODE-$IMGSZ "$@"
  R=runs/deeppcb-$MODE-$IMGSZ
  $T evaluate $R/weights/best.pt data/deeppcb-$MODE --imgsz "$IMGSZ" --json --out $R/eval > $R/eval.json
done
