#!/usr/bin/env bash
# Pictor PPE real-data check (issue #13): real construction-site photos, both of the paper's
# approaches through the product's own commands. 01: hat / vest / worker boxes; 02: one box per
# worker with a compliance class (W, WH, WV, WHV). yolo11n from YAML (from scratch), 640 px.
# Research data without a license: datasets and runs stay under data/ and runs/ (git-ignored);
# never commit or ship them, nor a model trained on them. See datasets/pictor-ppe.md.
#
# Usage: bash training/recipes/pictor-check.sh [DEVICE] [EPOCHS] [extra train options]
#   DEVICE  cpu (default), a CUDA device such as 0, or "eval": skip training and evaluate the
#           runs/pictor-01 and runs/pictor-02 checkpoints already there (e.g. brought back from a
#           GPU machine into runs/pictor-0N/weights/best.pt)
#   EPOCHS  maximum epochs (default 100); e.g. add --time-hours 0.1 to fit a wall-clock budget
# Example (the RESULTS.md run, one approach after the other): bash training/recipes/pictor-check.sh 0 100 --time-hours 0.1
set -euo pipefail
cd "$(dirname "$0")/../.."
source installers/env.sh
T=.venv/bin/inspector-train
DEVICE="${1:-cpu}"; shift || true
EPOCHS="${1:-100}"; shift || true
SRC="${PICTOR_SRC:-../shared/data/pictor-ppe}"
WORKERS=2; [ "$DEVICE" = cpu ] || WORKERS=8
for A in 01 02; do
  D=data/pictor-$A
  R=runs/pictor-$A
  # the train + valid lists pooled, re-split by near-duplicate cluster (seed 0): 497 train / 124 val
  [ -f $D/data.yaml ] || $T dataset $D --from-pictor "$SRC" --pictor-approach $A --seed 0
  if [ "$DEVICE" != eval ]; then
    $T train --data $D/data.yaml --model yolo11n.yaml --imgsz 640 --epochs "$EPOCHS" --batch 16 --seed 0 \
        --patience 100 --device "$DEVICE" --workers $WORKERS --project runs --name pictor-$A "$@"
  fi
  # ONNX + manifest, then the val split at full resolution through the station's runtime
  $T export $R/weights/best.pt --out $R/onnx --name pictor-$A --json > $R/export.json
  $T evaluate $R/onnx/best.onnx $D --split val --out $R/eval | tee $R/eval.txt  # figures: $R/eval/report.json
done
