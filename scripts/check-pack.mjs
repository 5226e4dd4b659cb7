// Fails when the tarball of a public package would contain a test, a fixture or test support, or would
// lack LICENSE, or when its README does not say that the package is ESM-only:
// `npm pack --dry-run --json` in every non-private package under packages/.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const forbidden =
  /(\.test\.|\.test-helpers\.|(^|\/)(test|tests|testing|test-support|fixtures?|__fixtures__)\/)/;
let failures = 0;
for (const name of readdirSync(path.join(root, 'packages'))) {
  const directory = path.join(root, 'packages', name);
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(path.join(directory, 'package.json'), 'utf8'));
  } catch {
    continue;
  }
  if (manifest.private === true) continue;
  const output = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: directory,
    encoding: 'utf8',
  });
  const files = JSON.parse(output)[0].files.map((file) => file.path);
  const bad = files.filter((file) => forbidden.test(file));
  const problems = [];
  if (bad.length > 0) problems.push(`the tarball would contain ${bad.join(', ')}`);
  if (!files.includes('LICENSE')) problems.push('the tarball would lack LICENSE (copy the root LICENSE)');
  const readme = files.includes('README.md') ? readFileSync(path.join(directory, 'README.md'), 'utf8') : '';
  if (!/ESM-only/.test(readme.split('\n').slice(0, 8).join('\n')))
    problems.push('README.md does not say "ESM-only" in its header (its first lines)');
  if (problems.length > 0) {
    failures++;
    for (const problem of problems) console.error(`${manifest.name}: ${problem}`);
  } else {
    console.log(`${manifest.name}: ${files.length} files with LICENSE, no tests or test support`);
  }
}
process.exit(failures === 0 ? 0 : 1);
