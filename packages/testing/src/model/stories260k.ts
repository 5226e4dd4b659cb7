import { readFileSync } from 'node:fs';
import { createCpuBackend } from '@deft/kernels-cpu';
import { LlamaModel, loadLlama2cCheckpoint, loadLlama2cTokenizer, type Tokenizer } from '@deft/model';
import { type Stories260KGolden, stories260K } from './shared-models.js';

/** The stories260K model on the CPU backend, its tokenizer and golden values. */
export async function loadStories260K(): Promise<{
  model: LlamaModel;
  tokenizer: Tokenizer;
  golden: Stories260KGolden;
}> {
  const model = LlamaModel.create(createCpuBackend(), await loadLlama2cCheckpoint(stories260K.weights));
  const tokenizer = await loadLlama2cTokenizer(stories260K.tokenizer);
  const golden = JSON.parse(readFileSync(stories260K.golden, 'utf8')) as Stories260KGolden;
  return { model, tokenizer, golden };
}
