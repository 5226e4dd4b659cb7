// Typechecks every ```ts code block of the package READMEs (packages/*/README.md, except the private
// packages/testing) as a whole, self-contained module, so an example a user copies compiles.
//
// Each block is written to .readme-examples/ (git-ignored) as a module of its own; .readme-examples/
// node_modules/@deft/* link to the workspace packages, and a tsconfig there extends tsconfig.base.json,
// so `@deft/*` resolves to the packages' sources through the `source` condition with the strictness the
// packages themselves are held to (module esnext / target es2022: top-level await is allowed). Then the
// workspace's tsc checks them all at once; errors are reported at their README line.
//
// A block fenced as ```ts fragment is skipped. Use it only for text that is not a program: a type shown
// for reference, or a line that only makes sense next to another example. Every skip is listed below
// and printed, so the set stays visible.
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outputDirectory = path.join(root, '.readme-examples');
const excludedPackages = new Set(['testing']);

/** Every ```ts block of a README: its info words, first content line (1-based) and text. */
function extractBlocks(text) {
  const blocks = [];
  const lines = text.split('\n');
  let open = null;
  for (const [index, line] of lines.entries()) {
    if (open === null) {
      const match = /^```(ts|typescript)(\s+.*)?$/.exec(line.trimEnd());
      if (match)
        open = { info: (match[2] ?? '').trim().split(/\s+/).filter(Boolean), start: index + 2, body: [] };
    } else if (line.trimEnd() === '```') {
      blocks.push({ info: open.info, start: open.start, text: open.body.join('\n') });
      open = null;
    } else {
      open.body.push(line);
    }
  }
  if (open !== null) throw new Error(`unclosed code block starting at line ${open.start - 1}`);
  return blocks;
}

rmSync(outputDirectory, { recursive: true, force: true });
mkdirSync(path.join(outputDirectory, 'node_modules', '@deft'), { recursive: true });

const sources = new Map(); // example file name -> { readme, start }
const skipped = [];
for (const name of readdirSync(path.join(root, 'packages')).sort()) {
  const packageDirectory = path.join(root, 'packages', name);
  const manifestPath = path.join(packageDirectory, 'package.json');
  if (!existsSync(manifestPath)) continue;
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
  symlinkSync(packageDirectory, path.join(outputDirectory, 'node_modules', manifest.name), 'dir');
  const readmePath = path.join(packageDirectory, 'README.md');
  if (excludedPackages.has(name) || !existsSync(readmePath)) continue;
  const readme = path.relative(root, readmePath);
  for (const [index, block] of extractBlocks(readFileSync(readmePath, 'utf8')).entries()) {
    if (block.info.includes('fragment')) {
      skipped.push(`${readme}:${block.start - 1}`);
      continue;
    }
    const file = `${name}-${index + 1}.ts`;
    // `export {}` makes a block without imports a module too (top-level await, no global names).
    writeFileSync(path.join(outputDirectory, file), `${block.text}\nexport {};\n`);
    sources.set(file, { readme, start: block.start });
  }
}

writeFileSync(
  path.join(outputDirectory, 'tsconfig.json'),
  `${JSON.stringify({ extends: '../tsconfig.base.json', include: ['*.ts'] }, null, 2)}\n`,
);

const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
let output = '';
let failed = false;
try {
  execFileSync(
    process.execPath,
    [tsc, '-p', path.join(outputDirectory, 'tsconfig.json'), '--pretty', 'false'],
    {
      cwd: root,
      encoding: 'utf8',
    },
  );
} catch (error) {
  failed = true;
  output = `${error.stdout ?? ''}${error.stderr ?? ''}`;
}

// Report each error at its README line: `.readme-examples/core-1.ts(3,5): error …` -> `packages/core/README.md:41:5: error …`.
const failedFiles = new Set();
for (const line of output.split('\n')) {
  if (line.trim() === '') continue;
  const match = /^(?:.*[\\/])?\.readme-examples[\\/]([^\\/(]+\.ts)\((\d+),(\d+)\): (.*)$/.exec(line);
  const source = match ? sources.get(match[1]) : undefined;
  if (match && source) {
    failedFiles.add(match[1]);
    console.error(`${source.readme}:${source.start + Number(match[2]) - 1}:${match[3]}: ${match[4]}`);
  } else {
    console.error(line);
  }
}

for (const location of skipped) console.log(`skipped (fenced as fragment): ${location}`);
if (failed) {
  console.error(
    `README examples: ${failedFiles.size} of ${sources.size} blocks do not compile (the examples are in .readme-examples/)`,
  );
  process.exit(1);
}
console.log(`README examples: ${sources.size} blocks typecheck, ${skipped.length} skipped as fragments`);
