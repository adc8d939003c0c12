#!/usr/bin/env bash
# Deploy the committed tree to a Hugging Face Space with the huggingface_hub CLI:
#   bash scripts/deploy_space.sh USER/SPACE          (after `hf auth login`, or with HF_TOKEN set)
# The model files (22.6 MB, 11.4 MB) are plain git blobs here, which a plain `git push` to the Hub
# refuses (over 10 MB); the upload CLI stores large files itself. Only committed files are sent
# (git archive): no .venv, flags, test artifacts or local data.
set -euo pipefail
space="${1:?usage: bash scripts/deploy_space.sh USER/SPACE}"
cd "$(dirname "$0")/.."
hf="${HF_CLI:-.venv/bin/hf}"; command -v "$hf" >/dev/null || hf=hf
tree="$(mktemp -d)"
trap 'rm -rf "$tree"' EXIT
git archive HEAD | tar -x -C "$tree"
"$hf" upload "$space" "$tree" . --repo-type space \
  --commit-message "fecsim $(git rev-parse --short HEAD)"
