import type { CliIo } from '../cli/cli-io.js';

/** The module that implements `deft generate` (text generation with a model over a tree search). */
interface GenerateModule {
  runGenerate(argv: string[]): Promise<number>;
}

const GENERATE_MODULE = './generate.js';

/**
 * `deft generate`: forwards its arguments to `runGenerate` of `commands/generate.ts`; resolves to the
 * exit code (1 with a message when that module is not part of this build).
 */
export async function runGenerateCommand(argv: readonly string[], io: CliIo): Promise<number> {
  let module: GenerateModule;
  try {
    module = (await import(/* @vite-ignore */ GENERATE_MODULE)) as GenerateModule;
  } catch (error) {
    if (isModuleMissing(error)) {
      io.stderr('deft generate: not available in this build (the generate command module is missing)\n');
      return 1;
    }
    throw error;
  }
  return module.runGenerate([...argv]);
}

function isModuleMissing(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ERR_MODULE_NOT_FOUND' && String((error as Error).message).includes('generate');
}
