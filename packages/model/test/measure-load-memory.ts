// Measures the peak host memory of loading a GGUF file (and of creating the model on the CPU backend):
// run with `node --conditions=source --import tsx test/measure-load-memory.ts FILE [--create]`. Prints one
// JSON line: the file size, the resident-set peak before loading, after loading, and after creating.
import { readFileSync, statSync } from 'node:fs';
import { createCpuBackend } from '@deft/kernels-cpu';
import { LlamaModel, loadGgufModel } from '../src/index.js';

function peakResidentBytes(): number {
  const status = readFileSync('/proc/self/status', 'utf8');
  const match = /VmHWM:\s+(\d+) kB/.exec(status);
  return match === null ? Number.NaN : Number(match[1]) * 1024;
}

const [file, flag] = process.argv.slice(2);
if (file === undefined) throw new Error('usage: measure-load-memory.ts FILE [--create]');
const fileBytes = statSync(file).size;
const before = peakResidentBytes();
const gguf = await loadGgufModel(file);
const loaded = peakResidentBytes();
let created = Number.NaN;
if (flag === '--create') {
  const model = LlamaModel.create(createCpuBackend(), gguf);
  created = peakResidentBytes();
  model.dispose();
}
console.log(JSON.stringify({ fileBytes, before, loaded, created }));
