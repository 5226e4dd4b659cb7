import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: { conditions: ['source'] },
  ssr: { resolve: { conditions: ['source'] } },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'apps/*/src/**/*.test.ts'],
    // Timeouts only catch hangs. How long a test takes depends on what else the machine runs (the WebGPU
    // tests on a CPU driver take ~15 s idle and several times that on two busy cores); speed is measured by
    // the benchmarks, never asserted by a test.
    testTimeout: 600_000,
    hookTimeout: 600_000,
    pool: 'forks',
  },
});
