#!/usr/bin/env bash
# Reproduce the shipped model, checkpoints/fecsim-ferplus.safetensors (model card:
# checkpoints/README.md): two 5-epoch fine-tunes of the previous FER2013 model on FER+'s votes, one
# on the vote distributions and one on their majority labels, then the mean of their weights
# (a model soup), calibrated on FER+ validation and exported with its int8 encoder.
#   bash scripts/train_ferplus.sh [FERPLUS_ROOT]      (default ../shared/datasets/ferplus)
# About 35 minutes a fine-tune on 2 CPU cores (one torch thread each, run side by side).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/datasets/ferplus}
python=${PYTHON:-.venv/bin/python}
mkdir -p runs
# The parent: the FER2013 model shipped before, from git history.
git show e21ff07:checkpoints/fecsim-fer2013.safetensors > runs/fecsim-fer2013.safetensors
common=(--data="$data" --init_from=runs/fecsim-fer2013.safetensors --augment=device
        --domain_augment=true --balance=0.5 --min_agreement=6 --label_smoothing=0 --epochs=5
        --lr=1e-3 --workers=0 --score_test=false)
"$python" train.py "${common[@]}" --vote_targets=graded --out_dir=runs/ferplus \
    --export=runs/ferplus/fecsim-ferplus.safetensors
"$python" train.py "${common[@]}" --vote_targets=majority --out_dir=runs/ferplus-majority \
    --export=runs/ferplus-majority/fecsim-ferplus-majority.safetensors
"$python" train.py --data="$data" --min_agreement=6 --epochs=0 --workers=0 --score_test=false \
    --init_from=runs/ferplus/fecsim-ferplus.safetensors,runs/ferplus-majority/fecsim-ferplus-majority.safetensors \
    --out_dir=runs/ship --export=checkpoints/fecsim-ferplus.safetensors --overwrite=true
