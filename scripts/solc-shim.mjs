#!/usr/bin/env node
// Exposes solc-js as the `solc` command line that forge drives (`forge test --use scripts/solc-shim.mjs`):
// `--version` and `--standard-json` (input on stdin, output on stdout). Imports are read from the
// filesystem, relative to the working directory and any --base-path / --include-path given.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isAbsolute, join } from 'node:path';

const require = createRequire(import.meta.url);
const solc = require('solc');
const args = process.argv.slice(2);

if (args.includes('--version')) {
  const v = solc.version().replace('.Emscripten.clang', '.Linux.g++');
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${v}\n`);
  process.exit(0);
}
if (!args.includes('--standard-json')) {
  process.stderr.write('solc-shim: only --version and --standard-json are supported\n');
  process.exit(2);
}

const roots = [process.cwd()];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--base-path' || args[i] === '--include-path') roots.push(args[i + 1]);
}

function findImport(path) {
  const candidates = isAbsolute(path) ? [path] : roots.map((r) => join(r, path));
  for (const p of candidates) if (existsSync(p)) return { contents: readFileSync(p, 'utf8') };
  return { error: `File not found: ${path}` };
}

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
process.stdout.write(solc.compile(Buffer.concat(chunks).toString('utf8'), { import: findImport }));
