// Fails when the tarball of a public package would contain a test, a fixture or test support:
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
  if (bad.length > 0) {
    failures++;
    console.error(`${manifest.name}: the tarball would contain ${bad.join(', ')}`);
  } else {
    console.log(`${manifest.name}: ${files.length} files, no tests or test support`);
  }
}
process.exit(failures === 0 ? 0 : 1);
