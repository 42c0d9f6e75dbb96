#!/usr/bin/env node
// Native addons normally get their binary from an install script; where npm runs none, build them here with
// npm's own node-gyp against the local Node headers, once. A no-op when they already load.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);

function loads(name, probe) {
  try {
    probe(require(name));
    return true;
  } catch {
    return false;
  }
}

function nodeGyp() {
  const npmRoot = dirname(
    dirname(
      require.resolve('npm/package.json', {
        paths: [dirname(process.execPath), join(dirname(process.execPath), '../lib/node_modules')],
      }),
    ),
  );
  return join(npmRoot, 'npm/node_modules/node-gyp/bin/node-gyp.js');
}

const addons = [{ name: 'better-sqlite3', probe: (m) => new m(':memory:').close() }];
for (const { name, probe } of addons) {
  if (loads(name, probe)) continue;
  const dir = dirname(require.resolve(`${name}/package.json`));
  let gyp;
  try {
    gyp = nodeGyp();
  } catch {
    gyp = undefined;
  }
  if (!gyp || !existsSync(gyp)) {
    console.error(
      `${name} has no native binary and npm's node-gyp was not found; run: cd ${dir} && npx node-gyp rebuild --release`,
    );
    process.exit(1);
  }
  console.error(`building ${name} (native addon) with node-gyp…`);
  // Use the headers installed beside this Node (no download: the network may only reach the registry).
  const prefix = process.env.npm_config_nodedir ?? dirname(dirname(process.execPath));
  const args = [gyp, 'rebuild', '--release'];
  if (existsSync(join(prefix, 'include/node/node.h'))) args.push(`--nodedir=${prefix}`);
  execFileSync(process.execPath, args, { cwd: dir, stdio: 'inherit' });
  if (!loads(name, probe)) {
    console.error(`${name} still does not load after building it`);
    process.exit(1);
  }
}
