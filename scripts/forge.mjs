#!/usr/bin/env node
// Runs the forge binary shipped in @foundry-rs/forge (npm here runs no install scripts, so the wrapper's
// postinstall never ran) with our solc-js shim as the compiler, offline.
import { spawn } from 'node:child_process';
import { chmodSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = `@foundry-rs/forge-${process.platform === 'darwin' ? 'darwin' : process.platform}-${process.arch === 'x64' ? 'amd64' : process.arch}`;
const forge = join(dirname(require.resolve(`${pkg}/package.json`)), 'bin', 'forge');
chmodSync(forge, 0o755);
const shim = join(root, 'scripts/solc-shim.mjs');
chmodSync(shim, 0o755);

const [cmd = 'test', ...rest] = process.argv.slice(2);
const args = ['build', 'test', 'coverage', 'snapshot'].includes(cmd)
  ? [cmd, '--use', shim, '--offline', ...rest]
  : [cmd, ...rest];
const child = spawn(forge, args, { cwd: root, stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
