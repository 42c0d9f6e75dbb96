#!/usr/bin/env node
// `npm run test:stress`: the whole suite (Biome, forge, vitest: `npm test` without its build) several times in a
// row while busy loops keep cores loaded, as on a shared CI machine. Real-time tests must still pass: they wait
// for conditions, never for fixed sleeps. Prints one line per run and a summary; exits non-zero when any run
// fails.
//
//   npm run test:stress                                   3 runs of everything, 2 busy loops
//   npm run test:stress -- --runs 1 --loops 2 test/unit   1 run of the unit tests only (paths go to vitest)
import { spawn } from 'node:child_process';

function usage(message) {
  process.stderr.write(
    `${message}\nusage: node scripts/stress.mjs [--runs N] [--loops N] [vitest paths...]\n`,
  );
  process.exit(2);
}

const args = process.argv.slice(2);
let runs = 3;
let loops = 2;
const paths = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--runs' || a === '--loops') {
    const n = Number(args[++i]);
    if (!Number.isInteger(n) || n < 0 || (a === '--runs' && n < 1)) usage(`${a} needs a whole number`);
    if (a === '--runs') runs = n;
    else loops = n;
  } else if (a.startsWith('--')) {
    usage(`unknown option ${a}`);
  } else {
    paths.push(a);
  }
}

// Each loop is its own process spinning one core until it is killed; they are stopped by their own pids.
const busy = [];
for (let i = 0; i < loops; i++) {
  busy.push(spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
}
const stopLoops = () => {
  for (const b of busy) if (b.exitCode === null && b.signalCode === null) b.kill('SIGKILL');
};
process.on('exit', stopLoops);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    stopLoops();
    process.exit(130);
  });
}

function runSuite() {
  return new Promise((resolve) => {
    const started = performance.now();
    const child = spawn(process.execPath, ['scripts/run-tests.mjs', ...paths], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let tail = '';
    child.stdout.on('data', (d) => {
      process.stdout.write(d);
      tail = (tail + d.toString('utf8')).slice(-2_000);
    });
    child.on('exit', (code, signal) => {
      const closing = [...tail.matchAll(/(\d+) passed, (\d+) failed, (\d+) skipped/g)].at(-1);
      resolve({
        ok: code === 0,
        code: code ?? signal,
        seconds: Math.round((performance.now() - started) / 100) / 10,
        line: closing ? closing[0] : 'no closing line',
      });
    });
  });
}

const results = [];
for (let i = 1; i <= runs; i++) {
  process.stdout.write(
    `\n=== stress run ${i}/${runs} (${loops} busy loops${paths.length ? `, ${paths.join(' ')}` : ''}) ===\n`,
  );
  results.push(await runSuite());
}
stopLoops();

process.stdout.write(
  `\nstress summary: ${runs} run(s) with ${loops} busy loop(s)${paths.length ? ` of ${paths.join(' ')}` : ''}\n`,
);
for (const [i, r] of results.entries()) {
  process.stdout.write(
    `  run ${i + 1}: ${r.ok ? 'ok    ' : 'FAILED'} ${r.line} in ${r.seconds} s (exit ${r.code})\n`,
  );
}
const failed = results.filter((r) => !r.ok).length;
process.stdout.write(failed === 0 ? `all ${runs} runs passed\n` : `${failed} of ${runs} runs failed\n`);
process.exit(failed === 0 ? 0 : 1);
