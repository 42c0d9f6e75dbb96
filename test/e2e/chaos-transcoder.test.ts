import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type Devnet, startDevnet } from '../../src/chain/devnet.js';
import { writeManifest } from '../../src/chain/manifest.js';
import { mineToNextRound } from '../../src/chain/staking.js';
import { resolveProfiles } from '../../src/media/profiles.js';
import { tempDir, tools } from '../unit/media/fixtures.js';
import { Cli, processTable } from './fixtures/cli.js';
import { watchHls } from './fixtures/hls-check.js';
import { freshRound, prng, startPublisher, waitFor } from './fixtures/processes.js';

// §8 of issue 9: an orchestrator (`streamflow orchestrator --local-capacity 0`) farming all its work out to two
// remote `streamflow transcoder` processes; one of them is SIGKILLed 10 times at random moments of a stream and
// started again each time. The victim is the transcoder running ffmpeg at that moment when there is one (a
// segment in its hands), so each kill drops real work: the orchestrator must re-dispatch the segment to the
// other transcoder at once and the broadcaster (`streamflow broadcaster`) must get every segment back. Claim,
// counted on the HLS output a player sees: no segment is missing or went out as the source.

const SEED = Number(process.env.CHAOS_SEED ?? 9);
const KILLS = 10;
const STREAM_SECONDS = 90;
const profiles = resolveProfiles('240p30,144p30');

/** Whether `pid` has an ffmpeg process among its descendants right now. */
function runsFfmpeg(pid: number | undefined, cmdOf: (pid: number) => string | undefined): boolean {
  if (pid === undefined) return false;
  const table = processTable();
  const todo = [pid];
  while (todo.length > 0) {
    const p = todo.pop() as number;
    for (const [child, parent] of table) {
      if (parent !== p) continue;
      if (/ffmpeg/.test(cmdOf(child) ?? '')) return true;
      todo.push(child);
    }
  }
  return false;
}

describe('chaos: remote transcoders SIGKILLed mid-stream', () => {
  const tmp = tempDir('chaos-transcoder');
  let devnet: Devnet | undefined;
  const clis: Cli[] = [];
  const cli = (name: string, args: string[]) => {
    const c = new Cli(name, args);
    clis.push(c);
    return c;
  };

  afterAll(async () => {
    await Promise.all(clis.map((c) => c.kill()));
    await devnet?.stop();
    tmp.remove();
  }, 60_000);

  it(`SIGKILLs a busy remote transcoder ${KILLS} times in a ${STREAM_SECONDS} s stream: no segment missing`, async () => {
    const t0 = performance.now();
    const rnd = prng(SEED);
    devnet = await startDevnet({ accounts: 3, blockTime: 1 });
    const dn = devnet;
    const manifestPath = join(tmp.dir, 'manifest.json');
    await writeManifest(manifestPath, dn.manifest);
    const keyFile = async (i: number) => {
      const file = join(tmp.dir, `key-${i}`);
      await writeFile(file, `${dn.accounts[i]?.privateKey}\n`, { mode: 0o600 });
      return file;
    };

    await freshRound(dn.signer(0), dn.manifest);
    const orchestrator = cli('orchestrator', [
      'orchestrator',
      ...['--rpc', dn.rpcUrl, '--manifest', manifestPath, '--key-file', await keyFile(1)],
      ...['--data-dir', join(tmp.dir, 'orchestrator'), '--price', '1000000', '--port', '0'],
      ...['--bond', '1000', '--reward-cut', '100000', '--fee-share', '500000'],
      ...['--local-capacity', '0', '--transcoder-secret', 'chaos'],
    ]);
    const [, orchUrl] = await orchestrator.line(/^orchestrator 0x[0-9a-fA-F]{40} serving (\S+);/);
    const transcoderArgs = ['transcoder', '--orchestrator', orchUrl as string, '--secret', 'chaos'];
    const transcoders: Cli[] = [];
    for (let i = 0; i < 2; i++) {
      const t = cli(`transcoder ${i}`, transcoderArgs);
      await t.line(/^transcoder serving /);
      transcoders.push(t);
    }
    await mineToNextRound(dn.signer(0), dn.manifest);

    const broadcaster = cli('broadcaster', [
      'broadcaster',
      ...['--rpc', dn.rpcUrl, '--manifest', manifestPath, '--key-file', await keyFile(2)],
      ...['--orchestrators', orchUrl as string],
      ...['--profiles', profiles.map((p) => p.name).join(','), '--http-port', '0', '--rtmp-port', '0'],
      ...['--deposit', '1', '--reserve', '1'],
    ]);
    const [, rtmp] = await broadcaster.line(/^ {2}publish: +(rtmp:\/\/\S+)\/<stream>/);
    const [, statusUrl] = await broadcaster.line(/^ {2}status: +(http:\/\/\S+\/status)$/);
    const key = 'chaos';
    const watch = watchHls(
      `${(statusUrl as string).replace(/\/status$/, '')}/hls/${key}/index.m3u8`,
      profiles,
    );
    const readStatus = async () => {
      const body = (await (await fetch(statusUrl as string)).json()) as {
        streams: { id: string; ingested: number; transcoded: number; sourceOnly: number; ended: boolean }[];
      };
      return body.streams.find((s) => s.id === key);
    };
    const setUpMs = performance.now() - t0;

    const publisher = startPublisher(`${rtmp}/${key}`, tools, STREAM_SECONDS, '426x240');
    let publisherErr = '';
    publisher.stderr?.on('data', (d: Buffer) => {
      publisherErr = (publisherErr + d.toString()).slice(-4_000);
    });
    const published = new Promise<number | null>((resolve) => publisher.once('exit', (c) => resolve(c)));
    const streamStart = performance.now();
    const schedule: { atS: number; victim: number; busy: boolean; restartMs: number }[] = [];
    try {
      await waitFor(
        'the first segments to be transcoded',
        async () => ((await readStatus())?.transcoded ?? 0) >= 2,
        60_000,
      );
      for (let k = 0; k < KILLS; k++) {
        await new Promise((r) => setTimeout(r, 2_000 + rnd() * 5_000));
        // The one with ffmpeg running, if any (it holds a segment); otherwise one at random.
        const cmdOf = (pid: number) => {
          for (const t of transcoders) {
            const c = t.spawned.get(pid);
            if (c) return c;
          }
          return undefined;
        };
        // A short wait for one to be caught with a segment: ffmpeg runs a fraction of each 2 s segment.
        const busy = await waitFor(
          'a transcoder running ffmpeg',
          () => {
            for (const t of transcoders) t.sample();
            const i = transcoders.findIndex((t) => runsFfmpeg(t.child.pid, cmdOf));
            return i >= 0 ? i : undefined;
          },
          4_000,
          50,
        ).catch(() => -1);
        const index = busy >= 0 ? busy : Math.floor(rnd() * transcoders.length);
        const victim = transcoders[index] as Cli;
        const killedAt = performance.now();
        await victim.stop('SIGKILL');
        const again = cli(`transcoder ${index}`, transcoderArgs);
        await again.line(/^transcoder serving /);
        transcoders[index] = again;
        schedule.push({
          atS: Math.round((killedAt - streamStart) / 100) / 10,
          victim: index,
          busy: busy >= 0,
          restartMs: Math.round(performance.now() - killedAt),
        });
      }
      const chaosEndS = (performance.now() - streamStart) / 1000;
      expect(await published, publisherErr).toBe(0);
      const views = await watch.ended(90_000);
      const s = await readStatus();
      const ingested = s?.ingested ?? 0;
      console.log(
        JSON.stringify({
          test: 'chaos-transcoder',
          seed: SEED,
          setUpS: Math.round(setUpMs / 100) / 10,
          chaosEndS: Math.round(chaosEndS * 10) / 10,
          totalS: Math.round((performance.now() - t0) / 100) / 10,
          segments: ingested,
          kills: schedule,
          killsBusy: schedule.filter((x) => x.busy).length,
        }),
      );
      expect(schedule).toHaveLength(KILLS);
      expect(ingested).toBeGreaterThan(0);
      expect({ transcoded: s?.transcoded, sourceOnly: s?.sourceOnly }, broadcaster.stderr).toEqual({
        transcoded: ingested,
        sourceOnly: 0,
      });
      const all = Array.from({ length: ingested }, (_, i) => i);
      for (const v of views) {
        expect({ name: v.name, seqs: v.seqs, standIns: v.standIns, bad: v.bad }).toEqual({
          name: v.name,
          seqs: all,
          standIns: [],
          bad: [],
        });
        // Nothing cut off either end: the playlists cover the whole published stream.
        expect(v.seconds, v.name).toBeGreaterThanOrEqual(STREAM_SECONDS - 2.5);
      }
    } finally {
      if (publisher.exitCode === null) publisher.kill('SIGKILL');
      watch.stop();
      if (process.env.CHAOS_DEBUG) {
        await writeFile(
          process.env.CHAOS_DEBUG,
          JSON.stringify(
            { schedule, broadcaster: broadcaster.stderr, orchestrator: orchestrator.stderr },
            null,
            1,
          ),
        );
      }
    }
  }, 480_000);
});
