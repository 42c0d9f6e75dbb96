#!/usr/bin/env node
// Generates src/rpc/gen/** from proto/** with protoc-gen-es (protobuf-es v2), offline.
//
// Route: the `buf` binary from the @bufbuild/buf npm package (shipped inside the registry package, nothing
// downloaded at run time) compiles the .proto files and runs the local protoc-gen-es plugin from
// node_modules. The template is passed inline, so the repository needs no buf.yaml/buf.gen.yaml and no
// remote plugins or BSR modules are involved. The output is then formatted with Biome (format and the safe fixes, e.g. import order) so it passes
// `biome check` like hand-written code.
//
// The generated files are checked in (typecheck and tests work on a fresh clone without a build step);
// `node scripts/gen-proto.mjs --check` regenerates into a temporary folder and fails if they differ.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => join(root, 'node_modules', '.bin', name);
const outDir = join(root, 'src', 'rpc', 'gen');
const check = process.argv.includes('--check');

function generate(out) {
  rmSync(out, { recursive: true, force: true });
  const template = {
    version: 'v2',
    plugins: [
      {
        local: bin('protoc-gen-es'),
        out,
        // `import_extension=js` for NodeNext resolution; `target=ts` so tsc sees the sources directly.
        opt: ['target=ts', 'import_extension=js'],
        include_imports: false,
      },
    ],
  };
  execFileSync(bin('buf'), ['generate', join(root, 'proto'), '--template', JSON.stringify(template)], {
    cwd: root,
    stdio: 'inherit',
  });
  // Piped: Biome's own notices about the project config are noise here; a failure still throws with its stderr.
  execFileSync(bin('biome'), ['check', '--write', out], { cwd: root, stdio: 'pipe' });
}

function list(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? list(path) : [path];
  });
}

if (check) {
  // Inside the project so Biome picks up the project's biome.json.
  const tmp = mkdtempSync(join(root, 'src', 'rpc', '.gen-check-'));
  try {
    generate(tmp);
    const fresh = list(tmp).map((p) => relative(tmp, p));
    const current = list(outDir).map((p) => relative(outDir, p));
    const stale = [...new Set([...fresh, ...current])].filter((p) => {
      try {
        return readFileSync(join(tmp, p), 'utf8') !== readFileSync(join(outDir, p), 'utf8');
      } catch {
        return true;
      }
    });
    if (stale.length > 0) {
      console.error(`src/rpc/gen is out of date (${stale.join(', ')}): run npm run build:proto`);
      // exitCode, not exit(): the finally below must still remove the temporary folder.
      process.exitCode = 1;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
} else {
  generate(outDir);
}
