#!/usr/bin/env bash
# Section 5 diagnostics on an EST run and an Original run trained with snapshots, e.g.
#   est train --preset est-gpt2 --scale cpu --out runs/diag_cpu/est --snapshot-every 50 --eval-every 50
#   est train --preset original --method original --scale cpu --out runs/diag_cpu/original --snapshot-every 50 --eval-every 50
#   paper_repro/section5.sh runs/diag_cpu/est runs/diag_cpu/original figures/section5_cpu
# Tables go to <run>/diagnostics/*.csv (a table already there is kept: rerun to resume),
# figures (PNG+PDF) to the output directory.
set -euo pipefail
EST=${1:?EST run directory}; ORIG=${2:?Original run directory}; OUT=${3:?figure directory}
STEPS=${CURVATURE_STEPS:-0,100,200,300,400}
est=${EST_CMD:-est}
mkdir -p "$EST/diagnostics" "$ORIG/diagnostics" "$OUT"

once() {  # once TABLE COMMAND...: run COMMAND --csv TABLE unless TABLE exists
  local table=$1; shift
  [ -f "$table" ] || "$@" --csv "$table"
}

d="$EST/diagnostics"
once "$d/regularizer_final.csv" $est diagnose regularizer "$EST" --samples 32 --probes 16 --batches 4
once "$d/regularizer.csv" $est diagnose regularizer "$EST" --trajectory --no-second-order --samples 16 --batches 2
once "$d/transitions.csv" $est diagnose transitions "$EST" --samples 32 --batches 4 --window 10
once "$d/dynamics.csv" $est diagnose dynamics "$ORIG" "$EST" --labels original,est --stage 3 --window 20 --bins 4
for run in "$EST" "$ORIG"; do
  once "$run/diagnostics/curvature.csv" $est diagnose curvature "$run" --steps "$STEPS" --matvecs 30 --batches 1
  once "$run/diagnostics/slice_1d.csv" $est landscape slice "$run" --points 21
  once "$run/diagnostics/sharpness.csv" $est landscape sharpness "$run" --eps 1e-3,5e-4 --steps 10
done
once "$d/interpolation.csv" $est landscape interpolate "$ORIG" "$EST" --points 21
$est plot "$ORIG" "$EST" --labels original,est --x step,flops,wall --out "$OUT"
