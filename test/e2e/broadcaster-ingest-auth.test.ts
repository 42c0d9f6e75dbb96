import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseEther } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStreamKey, hashStreamKey } from '../../src/broadcaster/ingest-auth.js';
import { type Network, startNetwork } from '../../src/demo/network.js';
import { resolveProfiles } from '../../src/media/profiles.js';
import type { Segment } from '../../src/media/segmenter.js';
import { cut, makeSource, tempDir, tools } from '../unit/media/fixtures.js';
import { readHls } from './fixtures/hls-check.js';

/** Publishes a file like OBS would, with a real ffmpeg; resolves with its exit code and stderr. */
function publish(file: string, url: string): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(
    tools.ffmpeg,
    ['-hide_banner', '-loglevel', 'error', '-re', '-i', file, '-c', 'copy', '-f', 'flv', url],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stderr })));
}

// D7 and D9 of issue 9: a broadcaster took RTMP publishes and HTTP pushes from anyone (its deposit paying for
// them), cross-origin POSTs, any number of streams, and the RTMP stream key `..` (every segment then went out as
// the source and the HLS URL was unreachable). Here it runs with a stream-keys file, as an operator would.
describe('broadcaster ingest is authenticated and bounded', () => {
  const tmp = tempDir('ingest-auth');
  const profiles = resolveProfiles('240p30');
  const pm = { expectedValue: 200_000_000_000_000n, txCostMultiplier: 2.5, redeemMargin: 1.2 };
  const keys: Record<string, string> = {};
  let net: Network;
  let flv: string;
  let segments: Segment[];

  beforeAll(async () => {
    const file = join(tmp.dir, 'stream-keys.json');
    for (const name of ['cam', 'pushed', 's1', 's2', 's3'])
      keys[name] = (await createStreamKey(file, name)).key;
    flv = makeSource(tmp.dir, 'cam', { width: 320, height: 180, fps: 30, seconds: 4, ext: 'flv' });
    segments = cut(makeSource(tmp.dir, 'push', { width: 320, height: 180, fps: 30, seconds: 4 }));
    net = await startNetwork(
      {
        dataDir: tmp.dir,
        orchestrators: [{ name: 'solo', pricePerPixel: 3_000_000n, node: { pm } }],
        broadcaster: {
          profiles,
          deposit: parseEther('1'),
          reserve: parseEther('1'),
          rtmpPort: 0,
          hlsWindow: 100,
          sender: { maxExpectedValue: 10n ** 15n },
          streamKeysFile: file,
          maxStreams: 3,
        },
        devnet: { blockTime: 1 },
      },
      { tools },
    );
  }, 120_000);

  afterAll(async () => {
    await net?.stop();
    tmp.remove();
  });

  /** Segments the orchestrator has been sent: what the broadcaster's deposit paid for. */
  const paidSegments = () => net.orchestrators[0]?.node.stats().segments ?? 0;

  it('refuses an RTMP publish without the key or with a wrong one, and takes the right key', async () => {
    const rtmp = net.broadcaster.rtmpUrl as string;
    const before = paidSegments();
    const none = await publish(flv, `${rtmp}/cam`);
    expect(none.code, none.stderr).not.toBe(0);
    expect(none.stderr).toContain('StreamKeyRequired');
    const wrong = await publish(flv, `${rtmp}/cam?key=${keys.s1}`);
    expect(wrong.code, wrong.stderr).not.toBe(0);
    expect(wrong.stderr).toContain('StreamKeyRefused');
    expect(net.broadcaster.streams.has('cam')).toBe(false);
    expect(paidSegments()).toBe(before);

    const ok = await publish(flv, `${rtmp}/cam?key=${keys.cam}`);
    expect(ok.code, ok.stderr).toBe(0);
    expect(await net.broadcaster.waitForEnd('cam', 30_000)).toBe(true);
    const stream = net.broadcaster.streams.get('cam')?.snapshot();
    expect(stream?.ingested).toBe(2);
    expect(stream?.transcoded).toBe(2);
    const variants = await readHls(net.broadcaster.hlsUrl('cam'), profiles);
    for (const v of variants) expect(v.seqs, v.name).toEqual([0, 1]);
  }, 120_000);

  it('refuses the RTMP stream keys "." and ".." with a reason', async () => {
    const rtmp = net.broadcaster.rtmpUrl as string;
    const before = paidSegments();
    for (const name of ['..', '.']) {
      const dots = await publish(flv, `${rtmp}/${name}?key=${keys.cam}`);
      expect(dots.code, `${name}: ${dots.stderr}`).not.toBe(0);
      expect(dots.stderr, name).toContain('not start with "."');
      expect(net.broadcaster.streams.has(name), name).toBe(false);
    }
    expect(paidSegments()).toBe(before);
  }, 120_000);

  it('refuses HTTP pushes without credentials, with a wrong key or from another origin', async () => {
    const url = (seq: number) => `${net.broadcaster.httpUrl}/live/pushed/${seq}.ts`;
    const seg = segments[0] as Segment;
    const before = paidSegments();
    const none = await fetch(url(0), { method: 'PUT', body: seg.bytes });
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ code: 'StreamKeyRequired' });
    const wrong = await fetch(url(0), {
      method: 'PUT',
      headers: { Authorization: `Bearer ${keys.cam}` },
      body: seg.bytes,
    });
    expect(wrong.status).toBe(403);
    // What a web page elsewhere can send without a preflight: a POST with no custom header, its key in the path.
    const cross = await fetch(`${net.broadcaster.httpUrl}/live/pushed/${keys.pushed}/0.ts`, {
      method: 'POST',
      headers: { Origin: 'http://attacker.example' },
      body: seg.bytes,
    });
    expect(cross.status).toBe(403);
    expect(await cross.json()).toMatchObject({ code: 'CrossOrigin' });
    const preflight = await fetch(url(0), {
      method: 'OPTIONS',
      headers: { Origin: 'http://attacker.example', 'Access-Control-Request-Method': 'PUT' },
    });
    expect(preflight.ok).toBe(false);
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    expect(net.broadcaster.streams.has('pushed')).toBe(false);
    expect(paidSegments()).toBe(before);
  }, 120_000);

  it('answers a duplicate pushed seq with 409 and a reason', async () => {
    const url = (seq: number) => `${net.broadcaster.httpUrl}/live/pushed/${seq}.ts`;
    const seg = segments[0] as Segment;
    const before = paidSegments();
    const auth = { Authorization: `Bearer ${keys.pushed}`, 'Content-Type': 'video/mp2t' };
    const ok = await fetch(url(seg.seq), { method: 'PUT', headers: auth, body: seg.bytes });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { orchestrator?: string }).orchestrator).toBe(
      net.orchestrators[0]?.node.address,
    );
    const dup = await fetch(url(seg.seq), { method: 'PUT', headers: auth, body: seg.bytes });
    expect(dup.status).toBe(409);
    const body = (await dup.json()) as { code: string; message: string };
    expect(body.code).toBe('DuplicateSegment');
    expect(body.message).toContain('already pushed');
    expect(paidSegments()).toBe(before + 1);
    const end = await fetch(`${net.broadcaster.httpUrl}/live/pushed`, { method: 'DELETE', headers: auth });
    expect(end.status).toBe(204);
    expect(net.broadcaster.streams.get('pushed')?.snapshot().ended).toBe(true);
  }, 120_000);

  it('refuses streams beyond --max-streams with a reason, and takes one again once a stream ended', async () => {
    const seg = segments[0] as Segment;
    const push = (name: string) =>
      fetch(`${net.broadcaster.httpUrl}/live/${name}/0.ts`, {
        method: 'PUT',
        headers: { Authorization: `Bearer ${keys[name]}` },
        body: seg.bytes,
      });
    for (const name of ['s1', 's2', 's3']) expect((await push(name)).status, name).toBe(200);
    const rtmp = await publish(flv, `${net.broadcaster.rtmpUrl}/cam?key=${keys.cam}`);
    expect(rtmp.code, rtmp.stderr).not.toBe(0);
    expect(rtmp.stderr).toContain('TooManyStreams');
    const fourth = await push('pushed');
    expect(fourth.status).toBe(503);
    expect(await fourth.json()).toMatchObject({ code: 'TooManyStreams' });
    const end = await fetch(`${net.broadcaster.httpUrl}/live/s1`, {
      method: 'DELETE',
      headers: { Authorization: `Bearer ${keys.s1}` },
    });
    expect(end.status).toBe(204);
    expect((await push('pushed')).status).toBe(200);
  }, 120_000);
});

describe('streamflow broadcaster keys create', () => {
  const tmp = tempDir('keys-cli');
  const bin = join(import.meta.dirname, '../../bin/streamflow.js');
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [bin, 'broadcaster', 'keys', 'create', ...args], { encoding: 'utf8' });
  afterAll(() => tmp.remove());

  it('prints a new key once, keeps only its hash in a 0600 file and refuses to overwrite a name', () => {
    const file = join(tmp.dir, 'keys.json');
    const first = run('cam', '--stream-keys', file);
    expect(first.status, first.stderr).toBe(0);
    const key = first.stdout.trim();
    expect(key).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8')).not.toContain(key);
    expect(JSON.parse(readFileSync(file, 'utf8')).keys.cam.sha256).toBe(hashStreamKey(key));

    const again = run('cam', '--stream-keys', file);
    expect(again.status).toBe(1);
    expect(again.stderr).toContain('error [StreamKeyExists]');
    expect(again.stdout).toBe('');
    const replaced = run('cam', '--stream-keys', file, '--replace');
    expect(replaced.status, replaced.stderr).toBe(0);
    expect(replaced.stdout.trim()).not.toBe(key);

    const dots = run('..', '--stream-keys', file);
    expect(dots.status).toBe(1);
    expect(dots.stderr).toContain('error [InvalidStreamName]');
    const missing = run('cam');
    expect(missing.status).not.toBe(0);
    expect(missing.stderr).toContain('--stream-keys');
  }, 60_000);
});
