#!/usr/bin/env bash
# Reproduce the shipped model, checkpoints/fecsim-v4.safetensors (model card: checkpoints/README.md):
# 1. FER+'s training votes with each face's FER2013 label counted as 4 more raters
#    (scripts/ferplus_with_fer2013_labels.py): FER+'s raters moved subtle sad, angry and afraid
#    faces to neutral, and the original label leans them back;
# 2. the FER+ model shipped before v3 (v2, from git history) fine-tuned whole on those votes;
# 3. its expression heads trained anew on FER+'s own votes from every training face's stored
#    features, with the geometry view (MediaPipe blendshapes) behind a gate; pairs are scored by how
#    far the two faces' expression distributions overlap, calibrated on FER+ validation.
#   bash scripts/train_v4.sh [FERPLUS_ROOT] [FER2013_ROOT]
# About 65 minutes on 2 CPU cores: step 2 about 45 (one torch thread), step 3 about 15. A second
# start resumes: step 2 from runs/v4-trunk/last.pt, step 3 from the features kept in runs/v4.
set -euo pipefail
cd "$(dirname "$0")/.."
ferplus=${1:-../shared/datasets/ferplus}
fer2013=${2:-../shared/datasets/fer2013}
python=${PYTHON:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p runs
git show a47395f:checkpoints/fecsim-ferplus.safetensors > runs/fecsim-ferplus.safetensors
git show a47395f:checkpoints/fecsim-ferplus.int8.onnx > runs/fecsim-ferplus.int8.onnx
[ -f runs/ferplus-fer2013/train/labels.csv ] ||
    "$python" -m scripts.ferplus_with_fer2013_labels "$ferplus" "$fer2013" runs/ferplus-fer2013 --votes=4
"$python" train.py --data=runs/ferplus-fer2013 --init_from=runs/fecsim-ferplus.safetensors \
    --augment=device --domain_augment=true --balance=0.5 --min_agreement=6 --label_smoothing=0 \
    --epochs=4 --lr=1e-3 --vote_targets=graded --workers=0 --score_test=false \
    --out_dir=runs/v4-trunk
"$python" train.py --data="$ferplus" --init_from=runs/v4-trunk/fecsim.safetensors \
    --head_only=true --geometry=true --pair_score=expressions --pair_temperature=0.6 \
    --logit_adjust=0.2 --balance=0.8 --epochs=30 --lr=3e-3 --min_agreement=6 --workers=0 \
    --score_test=false --out_dir=runs/v4 --export=checkpoints/fecsim-v4.safetensors --overwrite=true
