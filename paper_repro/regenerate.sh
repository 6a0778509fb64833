#!/usr/bin/env bash
# Regenerate every committed reproduction artifact at one scale (default cpu):
# paper_repro/results/*.csv, the executed notebooks, figures/*, and the claims table.
#   paper_repro/regenerate.sh cpu        # about 3-4 hours on 2 CPU cores; resumable
set -euo pipefail
SCALE=${1:-cpu}
cd "$(dirname "$0")/.."
est repro all --scale "$SCALE"
for notebook in notebooks/*.ipynb; do
  papermill --cwd notebooks "$notebook" "$notebook" -p scale "$SCALE"
done
est repro claims --scale "$SCALE" --markdown > "paper_repro/results/claims_$SCALE.md"
