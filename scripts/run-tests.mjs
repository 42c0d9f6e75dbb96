#!/usr/bin/env node
// `npm test`: Biome, then the Solidity suite (forge), then the TypeScript suite (vitest), both streamed as they run, then
// one closing line totalling both ("N passed, N failed, N skipped") that CI reads. Exits non-zero when
// either suite fails or runs no test.
// `node scripts/run-tests.mjs test/unit` (`npm run test:unit`, `test:e2e`): only the vitest files under the paths
// given, with the same closing line; Biome and forge are left out.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function run(cmd, args) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => {
      process.stdout.write(d);
      out = (out + d.toString('utf8')).slice(-20_000);
    });
    child.on('exit', (code, signal) => resolve({ code: code ?? (signal ? 1 : 0), out }));
  });
}

const totals = { passed: 0, failed: 0, skipped: 0 };
let ok = true;
const paths = process.argv.slice(2);
const whole = paths.length === 0;

// Lint and format first: it takes a fraction of a second and a failure should not hide behind a green suite.
if (whole) {
  const lint = await run(process.execPath, ['node_modules/@biomejs/biome/bin/biome', 'check', '.']);
  // Counted as one failed check, so the closing line never reads "0 failed" for a run that failed on style.
  if (lint.code !== 0) {
    ok = false;
    totals.failed += 1;
    process.stdout.write('\nbiome check failed: counted as 1 failed\n');
  }

  const sol = await run(process.execPath, ['scripts/forge.mjs', 'test']);
  const m = /(\d+) tests passed, (\d+) failed, (\d+) skipped/.exec(sol.out);
  if (m) {
    totals.passed += Number(m[1]);
    totals.failed += Number(m[2]);
    totals.skipped += Number(m[3]);
  }
  if (sol.code !== 0 || !m) ok = false;
}

const dir = mkdtempSync(join(tmpdir(), 'sf-vitest-'));
const report = join(dir, 'report.json');
const ts = await run(process.execPath, [
  'node_modules/vitest/vitest.mjs',
  'run',
  '--reporter=default',
  '--reporter=json',
  `--outputFile.json=${report}`,
  ...paths,
]);
try {
  const r = JSON.parse(readFileSync(report, 'utf8'));
  totals.passed += r.numPassedTests;
  totals.failed += r.numFailedTests;
  totals.skipped += r.numPendingTests + (r.numTodoTests ?? 0);
  if (r.numTotalTests === 0) ok = false;
} catch {
  ok = false;
}
rmSync(dir, { recursive: true, force: true });
if (ts.code !== 0) ok = false;
if (totals.failed > 0) ok = false;

process.stdout.write(`\n${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped\n`);
process.exit(ok ? 0 : 1);
