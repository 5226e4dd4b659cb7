#!/usr/bin/env bash
# One call on a lent GPU: card facts, SASS summary of the attention kernels, the full check and bench
# (both executors), then optional extra bench runs given as quoted argument lists, e.g.
#   packages/kernels-cuda/scripts/device-run.sh "--skip-check --executors tasks --task-cost 200 --label cost200"
# Needs .gpu (../shared/gpu/prepare.sh apps/cli/src/gpu/cuda-main.ts) and the built addon; writes under $OUT.
set -u
source .gpu/device.sh
ADDON=$PWD/packages/kernels-cuda/native/build/Release/deft_cuda.node
OUT=${OUT:-/tmp/deft-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu --format=csv | tee "$OUT/card.txt"
if command -v cuobjdump >/dev/null; then
  cuobjdump -sass -arch sm_90 "$ADDON" > "$OUT/addon-sm90.sass" 2>&1
  # Instruction mix of each task kernel: counts by opcode.
  awk '/Function :/ {name=$3} /\/\*[0-9a-f]+\*\// && name ~ /Task/ { for (i=1;i<=NF;i++) if ($i ~ /^[A-Z][A-Z0-9_.]+$/) { split($i,a,"."); count[name" "a[1]]++; break } }
       END { for (k in count) print count[k], k }' "$OUT/addon-sm90.sass" | sort -k2,2 -k1,1nr > "$OUT/task-sass-mix.txt"
  gzip -f "$OUT/addon-sm90.sass"
fi
DEFT_CUDA_ADDON=$ADDON timeout "${MAIN_TIMEOUT:-330}" node .gpu/app/cuda-main.mjs --json "$OUT/cuda-bench.json" ${MAIN_ARGS:-} \
  2> "$OUT/main-stderr.txt" | tee "$OUT/main-stdout.txt" | tail -60
echo "main exit ${PIPESTATUS[0]}"
index=0
for extra in "$@"; do
  index=$((index + 1))
  # shellcheck disable=SC2086
  DEFT_CUDA_ADDON=$ADDON timeout "${EXTRA_TIMEOUT:-120}" node .gpu/app/cuda-main.mjs --json "$OUT/cuda-extra-$index.json" $extra 2> "$OUT/extra-$index-stderr.txt" | tee "$OUT/extra-$index-stdout.txt" | tail -16
  echo "extra $index exit ${PIPESTATUS[0]}"
done
