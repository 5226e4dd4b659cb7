#!/usr/bin/env bash
# Bundles `*.gpu.test.ts` files for a GPU machine without node_modules: each test file becomes
# .gpu/app/<name>.mjs with `vitest` replaced by scripts/gpu-tests/vitest-shim.mjs, run there with
#   source .gpu/device.sh && node .gpu/app/<name>.mjs
# Run from the project root after `pnpm install` (and the CUDA addon build for the CUDA tests).
set -euo pipefail
[[ $# -gt 0 ]] || { echo "usage: scripts/gpu-tests/bundle-gpu-tests.sh FILE.gpu.test.ts ..." >&2; exit 2; }
ESBUILD_FLAGS="--conditions=source --alias:vitest=./scripts/gpu-tests/vitest-shim.mjs ${ESBUILD_FLAGS:-}" \
  ../shared/gpu/prepare.sh "$@"
