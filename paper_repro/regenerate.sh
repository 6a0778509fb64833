#!/usr/bin/env bash
# Regenerate every committed reproduction artifact at one scale (default cpu):
# paper_repro/results/*.csv, the executed notebooks, figures/*, the claims table and the
# README's generated tables.
#   paper_repro/regenerate.sh cpu        # about 3-4 hours on 2 CPU cores; resumable
#   paper_repro/regenerate.sh regime     # about 16 hours on 2 CPU cores (two jobs), and the
#                                        # studies of why EST trails about 12 more; resumable
#   paper_repro/regenerate.sh cpu --notebooks-only   # re-execute the notebooks on the committed
#                                        # results, seconds each: a figure whose runs are not on
#                                        # the machine is shown partial and not saved over its file
# The notebooks in notebooks/ are executed in place at cpu scale, other scales into
# notebooks/<scale>/; ladder.ipynb and studies.ipynb (regime only) in place at regime;
# table1_cost.ipynb (no scale) at cpu only.
set -euo pipefail
SCALE=${1:-cpu}
ONLY=${2:-}
cd "$(dirname "$0")/.."
if [ "$ONLY" != --notebooks-only ]; then
  est repro all --scale "$SCALE"
  if [ "$SCALE" = regime ]; then
    est repro ladder --scale regime
    for study in width ablation control lr; do est repro "$study" --scale regime; done
  fi
fi
OUT=notebooks
if [ "$SCALE" != cpu ]; then OUT="notebooks/$SCALE"; mkdir -p "$OUT"; fi
for notebook in notebooks/*.ipynb; do
  target="$OUT/$(basename "$notebook")"
  # table1_cost.ipynb is the cost model, the same at every scale: executed at cpu only
  if [ "$(basename "$notebook")" = table1_cost.ipynb ] && [ "$SCALE" != cpu ]; then continue; fi
  if [ "$(basename "$notebook")" = ladder.ipynb ] || [ "$(basename "$notebook")" = studies.ipynb ]; then
    [ "$SCALE" = regime ] || continue
    target="$notebook"
  fi
  papermill --cwd notebooks "$notebook" "$target" -p scale "$SCALE"
done
if [ "$ONLY" != --notebooks-only ]; then  # C3, C4 read the runs: only with them regenerated
  est repro claims --scale "$SCALE" --markdown > "paper_repro/results/claims_$SCALE.md"
fi
python scripts/update_readme.py
