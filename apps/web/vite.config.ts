import { defaultClientConditions, defineConfig } from 'vite';
import { refuseNodeImports } from './build/refuse-node-imports.js';

// The workspace packages resolve to their TypeScript sources (the `source` export condition), so the app
// builds without building them first.
const conditions = ['source', ...defaultClientConditions];

export default defineConfig({
  resolve: { conditions },
  worker: { format: 'es', plugins: () => [refuseNodeImports()] },
  plugins: [refuseNodeImports()],
  build: { target: 'es2022', chunkSizeWarningLimit: 2048 },
  server: { host: '127.0.0.1' },
  preview: { host: '127.0.0.1' },
});
