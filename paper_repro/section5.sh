#!/usr/bin/env bash
# Section 5 diagnostics on an EST run and an Original run trained with snapshots, e.g.
#   est train --preset est-gpt2 --scale cpu --out runs/diag_cpu/est --snapshot-every 50 --eval-every 50
#   est train --preset original --method original --scale cpu --out runs/diag_cpu/original --snapshot-every 50 --eval-every 50
#   paper_repro/section5.sh runs/diag_cpu/est runs/diag_cpu/original figures/section5_cpu
# Tables go to <run>/diagnostics/*.csv, figures (PNG+PDF) to the output directory.
set -euo pipefail
EST=${1:?EST run directory}; ORIG=${2:?Original run directory}; OUT=${3:?figure directory}
est=${EST_CMD:-est}
mkdir -p "$EST/diagnostics" "$ORIG/diagnostics" "$OUT"
d="$EST/diagnostics"
$est diagnose regularizer --checkpoint "$EST" --samples 32 --probes 16 --batches 4 --csv "$d/regularizer_final.csv"
$est diagnose regularizer --checkpoint "$EST" --trajectory --no-second-order --samples 16 --batches 2 --csv "$d/regularizer.csv" >/dev/null
$est diagnose transitions --run "$EST" --samples 32 --batches 4 --window 10 --csv "$d/transitions.csv"
$est diagnose dynamics --runs "$ORIG,$EST" --labels original,est --stage 3 --window 20 --bins 4 --csv "$d/dynamics.csv"
for run in "$EST" "$ORIG"; do
  $est diagnose curvature --run "$run" --matvecs 30 --batches 1 --csv "$run/diagnostics/curvature.csv"
  $est landscape slice --checkpoint "$run" --points 21 --csv "$run/diagnostics/slice_1d.csv" >/dev/null
  $est landscape sharpness --checkpoint "$run" --eps 1e-3,5e-4 --steps 10 --csv "$run/diagnostics/sharpness.csv"
done
$est landscape interpolate --checkpoint "$ORIG" --to "$EST" --points 21 --csv "$d/interpolation.csv" >/dev/null
$est plot "$ORIG" "$EST" --labels original,est --x step,flops,wall --out "$OUT"
