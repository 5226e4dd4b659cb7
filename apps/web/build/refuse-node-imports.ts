import type { Plugin } from 'vite';

/**
 * Fails the build when a chunk still imports a Node built-in (`node:…`, or the browser stub Vite puts in
 * place of one): the page and its worker must run on the packages' browser entry points alone.
 */
export function refuseNodeImports(): Plugin {
  return {
    name: 'deft:refuse-node-imports',
    apply: 'build',
    generateBundle(_options, bundle) {
      for (const chunk of Object.values(bundle)) {
        if (chunk.type !== 'chunk') continue;
        const offenders = [
          ...[...chunk.imports, ...chunk.dynamicImports].filter((id) => id.startsWith('node:')),
          ...chunk.moduleIds.filter((id) => id.startsWith('node:') || id.includes('__vite-browser-external')),
        ];
        if (offenders.length > 0) {
          this.error(
            `${chunk.fileName} imports Node built-ins (${offenders.join(', ')}); use the packages' browser entry points`,
          );
        }
      }
    },
  };
}
