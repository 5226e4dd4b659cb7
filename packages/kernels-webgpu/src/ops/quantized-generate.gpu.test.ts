import { BLOCK_QUANTIZATIONS, type BlockQuantization, type ModelBackend } from '@deft/core';
import { DecodingEngine, generate, runStrategy } from '@deft/decoder';
import { createCpuBackend } from '@deft/kernels-cpu';
import { LlamaModel, parseGgufModel } from '@deft/model';
import { GGML_TYPE_IDS, randomCheckpoint, superBlockConfig, writeGgufCheckpoint } from '@deft/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { openTestDevice } from '../../test/open-test-device.js';
import { createWebGpuBackend } from '../backend/webgpu-backend.js';
import type { WebGpuQuantizedWeight } from './quantized-weight.js';

const testDevice = await openTestDevice();
if (testDevice.handle === undefined) {
  console.warn(`generate on WebGPU with quantized weights skipped: ${testDevice.skipReason}`);
}

const CONFIG = superBlockConfig({ vocabSize: 96, contextLength: 64 });

const PROMPT = [1, 17, 42, 5, 88, 23, 61];
const STEPS = 6;
/** Log-probabilities and logits: f32 sums on the GPU against the CPU's f64 sums over the same values. */
const TOLERANCE = 1e-3;

/** Greedy tokens and their log-probabilities, then the first step's logits, on one backend. */
async function run(backend: ModelBackend, file: Uint8Array) {
  const model = LlamaModel.create(backend, await parseGgufModel(file, 'test.gguf'));
  const engine = DecodingEngine.create(model, { numPages: 8, pageSize: 16 });
  const { sequence } = await runStrategy(generate(engine, { prompt: PROMPT, maxTokens: STEPS }));
  const session = engine.openSession(PROMPT);
  const logits = (await session.evaluate({ output: 'logits' })).row(session.root)!.slice();
  session.release();
  engine.dispose();
  return { model, tokens: sequence.tokens, logProbabilities: sequence.logProbabilities, logits };
}

describe.skipIf(testDevice.handle === undefined)('generate on WebGPU with quantized weights', () => {
  const gpu = createWebGpuBackend({ device: testDevice.handle!.device });
  const cpu = createCpuBackend();
  afterAll(() => {
    gpu.dispose();
    cpu.dispose();
    testDevice.handle?.dispose();
  });

  BLOCK_QUANTIZATIONS.forEach((quantization: BlockQuantization, index) => {
    // Every other file ties the output head to the quantized embedding table.
    const tied = index % 2 === 0;
    it(`${quantization}${tied ? ' (tied output head)' : ''}: the CPU's greedy tokens and logits`, async () => {
      const file = writeGgufCheckpoint(randomCheckpoint({ ...CONFIG, tiedEmbeddings: tied }, 5 + index), {
        matrixType: GGML_TYPE_IDS[quantization],
      });
      const onCpu = await run(cpu, file);
      const onGpu = await run(gpu, file);
      onCpu.model.dispose();
      onGpu.model.dispose();
      expect(onGpu.tokens).toEqual(onCpu.tokens);
      for (let step = 0; step < STEPS; step++) {
        expect(Math.abs(onGpu.logProbabilities[step]! - onCpu.logProbabilities[step]!)).toBeLessThan(
          TOLERANCE,
        );
      }
      const top = Array.from(onCpu.logits.keys())
        .sort((a, b) => onCpu.logits[b]! - onCpu.logits[a]!)
        .slice(0, 5);
      for (const id of top) expect(Math.abs(onGpu.logits[id]! - onCpu.logits[id]!)).toBeLessThan(TOLERANCE);
    }, 60_000);
  });

  it('keeps every matrix as its blocks on the device', async () => {
    const file = writeGgufCheckpoint(randomCheckpoint(CONFIG, 3), { matrixType: GGML_TYPE_IDS.q4_k });
    const created: WebGpuQuantizedWeight[] = [];
    const create = gpu.ops.createQuantizedWeight!;
    const ops = {
      ...gpu.ops,
      createQuantizedWeight: (...args: Parameters<typeof create>) => {
        const weight = create(...args) as WebGpuQuantizedWeight;
        created.push(weight);
        return weight;
      },
    };
    // The backend with its createQuantizedWeight recorded.
    const spy = new Proxy(gpu, {
      get(target, property) {
        if (property === 'ops') return ops;
        const value = Reflect.get(target, property, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const model = LlamaModel.create(spy, await parseGgufModel(file, 'test.gguf'));
    // token_embd, output and 7 matrices per layer.
    expect(created.length).toBe(2 + 7 * CONFIG.numLayers);
    expect(created.every((weight) => weight.quantization === 'q4_k')).toBe(true);
    const values = created.reduce((sum, weight) => sum + weight.shape[0]! * weight.shape[1]!, 0);
    const bytes = created.reduce((sum, weight) => sum + weight.buffer.size, 0);
    expect(bytes).toBe((values / 256) * 144);
    model.dispose();
  });
});
