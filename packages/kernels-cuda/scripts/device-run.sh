#!/usr/bin/env bash
# One call on a lent GPU: card facts, the addon's SASS (gzipped), the full check and bench (both
# executors), then optional extra bench runs given as quoted argument lists; an extra that starts with
# "@NAME " runs the addon at packages/kernels-cuda/native/build/NAME/deft_cuda.node (an earlier version
# carried for a same-call comparison), one that starts with "@ncu " runs under Nsight Compute, one that
# starts with "@env:NAME=VALUE " runs with that environment variable set (NCU_ARGS adds arguments to ncu). E.g.
#   packages/kernels-cuda/scripts/device-run.sh "--skip-check --executors tasks --task-cost 200 --label cost200"
# Needs .gpu (../shared/gpu/prepare.sh apps/cli/src/gpu/cuda-main.ts) and the built addon; writes under $OUT.
set -u
source .gpu/device.sh
BUILD=$PWD/packages/kernels-cuda/native/build
ADDON=$BUILD/Release/deft_cuda.node
OUT=${OUT:-/tmp/deft-out}
mkdir -p "$OUT"
LOG=$OUT/log.txt
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu --format=csv | tee "$OUT/card.txt"
if command -v cuobjdump >/dev/null; then
  cuobjdump -sass -arch sm_90a "$ADDON" | gzip > "$OUT/addon-sm90a.sass.gz"
fi
# The wgmma operand layouts, one product each, before anything relies on them (built by the caller:
# nvcc -gencode=arch=compute_90a,code=sm_90a -Inative/src native/probe/wgmma_probe.cu).
if [[ -x $BUILD/wgmma_probe ]]; then
  "$BUILD/wgmma_probe" 2>&1 | tee -a "$LOG"
fi
DEFT_CUDA_ADDON=$ADDON timeout "${MAIN_TIMEOUT:-330}" node .gpu/app/cuda-main.mjs --json "$OUT/cuda-bench.json" ${MAIN_ARGS:-} \
  2>> "$LOG" | tee -a "$LOG" | tail -60
echo "main exit ${PIPESTATUS[0]}"
index=0
for extra in "$@"; do
  index=$((index + 1))
  addon=$ADDON
  prefix=()
  environment=()
  if [[ $extra == @env:* ]]; then
    assignment=${extra%% *}
    environment=("${assignment#@env:}")
    extra=${extra#* }
  fi
  if [[ $extra == @ncu\ * ]]; then
    extra=${extra#@ncu }
    prefix=(ncu --clock-control none --kernel-name regex:Task --launch-skip 12 --launch-count 2 --section SpeedOfLight
      --section Occupancy --section LaunchStats --section WarpStateStats --section SchedulerStats ${NCU_ARGS:-})
  elif [[ $extra == @* ]]; then
    name=${extra%% *}
    name=${name#@}
    extra=${extra#* }
    addon=$BUILD/$name/deft_cuda.node
  fi
  echo "== extra $index: ${environment[*]:-} ${prefix[*]:-} $extra ($addon)" | tee -a "$LOG"
  # shellcheck disable=SC2086
  env "${environment[@]}" DEFT_CUDA_ADDON=$addon timeout "${EXTRA_TIMEOUT:-120}" "${prefix[@]}" node .gpu/app/cuda-main.mjs \
    --json "$OUT/cuda-extra-$index.json" $extra 2>> "$LOG" | tee -a "$LOG" | tail -"${EXTRA_TAIL:-14}"
  echo "extra $index exit ${PIPESTATUS[0]}"
done
# Last: one short table over every JSON of this call (best tasks strategy per workload, µs).
node -e '
const fs = require("fs"), path = require("path"), dir = process.argv[1];
const files = fs.readdirSync(dir).filter((f) => /^cuda-(bench|extra-\d+)\.json$/.test(f)).sort();
const rows = new Map(), cols = [];
for (const file of files) {
  let data; try { data = JSON.parse(fs.readFileSync(path.join(dir, file), "utf8")); } catch { continue; }
  if (!data.bench) continue;
  const col = `${data.options.label}`; cols.push(col);
  for (const w of data.bench.workloads) {
    const row = rows.get(w.workload) ?? { ro: w.readOnceMicroseconds }; rows.set(w.workload, row);
    const t = w.strategies.filter((s) => s.executor === "tasks" && s.strategy !== "sequence").map((s) => s.layerMicroseconds.median);
    if (t.length) row[col] = Math.min(...t);
  }
  if (data.check) { const c = data.check; console.log(`check ${col}: ${c.filter((x) => x.passed && x.repeatable).length}/${c.length} passed and bit-identical`); }
}
console.log(["workload", "read-once", ...cols].join(" | "));
for (const [w, r] of rows) console.log([w, r.ro.toFixed(1), ...cols.map((c) => (r[c] === undefined ? "-" : r[c].toFixed(1)))].join(" | "));
' "$OUT"
