#!/usr/bin/env node
// Runs the `deft` command from its TypeScript sources: no build step. Node is started again with
// tsx as a loader and the `source` export condition, so workspace packages load from their `src/`.
// Works from any working directory; exit codes and signals are passed through.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const mainPath = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const tsxLoader = import.meta.resolve('tsx');

const child = spawn(
  process.execPath,
  ['--conditions=source', '--import', tsxLoader, mainPath, ...process.argv.slice(2)],
  { stdio: 'inherit' },
);

const forwardedSignals = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];
const forwarders = new Map();
for (const signal of forwardedSignals) {
  const forward = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  forwarders.set(signal, forward);
  process.on(signal, forward);
}

child.on('error', (error) => {
  console.error(`deft: could not start Node: ${error.message}`);
  process.exitCode = 1;
});

child.on('exit', (code, signal) => {
  for (const [name, forward] of forwarders) process.off(name, forward);
  if (signal !== null) {
    // Die of the same signal, so the caller sees what the child saw.
    process.kill(process.pid, signal);
    return;
  }
  process.exitCode = code ?? 1;
});
