#!/usr/bin/env bash
# Every table of the README, from the commands the README names (seed 0, CPU), into
# RESULTS/<table>/metrics.json. Hours on 2 cores; each step can also be run alone.
# Usage: bash scripts/results.sh [RESULTS] [FSDD]   (defaults: results, ../shared/data/fsdd)
set -euo pipefail
out=${1:-results}
fsdd=${2:-../shared/data/fsdd}
rnnkit=${RNNKIT:-.venv/bin/rnnkit}
models=$out/models
# Seed 0 is every command's default; the tables are CPU figures, so no GPU is visible.
step() { echo "== rnnkit $*"; CUDA_VISIBLE_DEVICES="" "$rnnkit" "$@"; }

step experiment vanishing-gradient --out "$out/vanishing-gradient"
step experiment adding --lengths 100 --cells rnn,lstm,gru --out "$out/vg100"
step experiment adding --lengths 100 --cells lstm --forget-bias 1 --out "$out/vg100-fb1"
step forecast evaluate --out "$out/forecast"
step forecast evaluate --protocol original --out "$out/forecast-original"
step forecast evaluate --data m3 --out "$out/m3"
step anomaly evaluate --out "$out/anomaly"
step sentiment train --out "$models/sentiment"
step sentiment evaluate --model "$models/sentiment" --out "$out/sentiment"
step lm train --out "$models/lm"
step lm evaluate --model "$models/lm" --out "$out/lm"
step translate train --out "$models/en-es"
step translate evaluate --model "$models/en-es" --out "$out/translate-en-es"
step translate train --source es --out "$models/es-en"
step translate evaluate --model "$models/es-en" --out "$out/translate-es-en"
if [ -d "$fsdd" ]; then
  step speech evaluate --data "$fsdd" --out "$out/fsdd"
else
  echo "== speech: $fsdd not found (the Free Spoken Digit Dataset's recordings); skipped" >&2
fi
step speech train --out "$models/speech"
step speech evaluate --model "$models/speech" --out "$out/speech-synthetic"
step caption choose --out "$out/caption-choice"
step caption evaluate --out "$out/caption"
step caption evaluate --video --out "$out/caption-video"
step music train --out "$models/music"
step music train --split tune --out "$models/music-by-tune"
step music evaluate --model "$models/music" --model "$models/music-by-tune" --out "$out/music"
echo "every table's metrics.json is under $out/"
