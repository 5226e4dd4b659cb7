#!/usr/bin/env bash
# One call on a lent GPU for the model ops and end-to-end decoding: the CUDA model-op and decoding GPU
# tests (bundled by scripts/gpu-tests/bundle-gpu-tests.sh), then `deft bench-e2e` on each model given
# in E2E_MODELS (default "llama3-8b llama3.2-1b") with E2E_ARGS, JSON and logs under $OUT.
# Needs .gpu (the test bundles, apps/cli/src/main.ts bundled by ../shared/gpu/prepare.sh, stories260K
# under .gpu/shared/models) and the built addon.
set -u
source .gpu/device.sh
export DEFT_CUDA_ADDON=$PWD/packages/kernels-cuda/native/build/Release/deft_cuda.node
export DEFT_SHARED_DIRECTORY=$PWD/.gpu/shared
OUT=${OUT:-/tmp/deft-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,memory.total --format=csv | tee "$OUT/card.txt"
for test in .gpu/app/*.gpu.test.mjs; do
  name=$(basename "$test" .mjs)
  echo "== $name"
  GPU_TEST_JSON=$OUT/$name.json timeout "${TEST_TIMEOUT:-240}" node "$test" > "$OUT/$name.log" 2>&1
  echo "exit $?: $(tail -1 "$OUT/$name.log")"
  grep -E '^✗' -A4 "$OUT/$name.log" | head -30
done
for model in ${E2E_MODELS:-llama3-8b llama3.2-1b}; do
  echo "== bench-e2e $model"
  # shellcheck disable=SC2086
  timeout "${BENCH_TIMEOUT:-240}" node .gpu/app/main.mjs bench-e2e --backend cuda --model "$model" \
    --json "$OUT/e2e-$model.json" ${E2E_ARGS:-} 2> "$OUT/e2e-$model.log" | tail -"${BENCH_TAIL:-22}"
  echo "exit ${PIPESTATUS[0]}"
done
