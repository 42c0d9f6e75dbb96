/**
 * ingestFlood (issue 9 D7): 5,000 stream starts at the honest broadcaster's ingest from loopback, with no
 * key: HTTP push of a small valid segment as the first segment of a new stream each time
 * (`PUT /live/<stream>/0.ts`), spread over the case, at most {@link CONCURRENCY} at once. Whatever the
 * broadcaster has transcoded for these streams its deposit paid for; the bench counts those renditions from
 * the broadcaster's own stream records (the attacker only sees HTTP statuses).
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Agent } from 'node:http';
import { type AttackConfig, type AttackResult, codeOf, httpRequest, pause, Tally } from './common.js';

const STARTS = 5_000;
const CONCURRENCY = 32;
/** Spread the starts over about this long, ms (less when the broadcaster answers slower). */
const SPREAD_MS = 55_000;

/** Stream names of this run: the bench tells the attacker's streams from the honest one by this prefix. */
export const FLOOD_STREAM_PREFIX = 'flood-';

/** One stream start: the URL and headers of an unauthenticated push. One function, so it adapts in one place. */
function floodPush(base: string, run: string, i: number): { url: string; headers: Record<string, string> } {
  return {
    url: `${base}/live/${FLOOD_STREAM_PREFIX}${run}-${i}/0.ts`,
    headers: { 'Content-Type': 'video/mp2t' },
  };
}

export async function ingestFlood(
  cfg: AttackConfig,
  signal: AbortSignal,
  hooks: { ready(): void; progress(text: string): void },
): Promise<AttackResult> {
  const tally = new Tally();
  const segment = new Uint8Array(await readFile(cfg.tinySegmentPath));
  const agent = new Agent({
    keepAlive: true,
    maxSockets: CONCURRENCY,
    ...(cfg.localAddress ? { localAddress: cfg.localAddress } : {}),
  });
  const run = randomBytes(3).toString('hex');
  const started = Date.now();
  let next = 0;

  const worker = async () => {
    while (!signal.aborted && next < STARTS && Date.now() - started < cfg.maxMs) {
      const i = next++;
      // Pace: start i is due at i × SPREAD_MS / STARTS.
      const due = started + (i * SPREAD_MS) / STARTS;
      if (due > Date.now()) await pause(due - Date.now(), signal);
      if (signal.aborted) break;
      const push = floodPush(cfg.broadcasterHttpUrl, run, i);
      tally.sent++;
      try {
        const res = await httpRequest(push.url, {
          method: 'PUT',
          body: segment,
          headers: push.headers,
          timeoutMs: 30_000,
          signal,
          agent,
          localAddress: cfg.localAddress,
        });
        tally.count(`http${res.status}`);
      } catch (err) {
        if (signal.aborted) break;
        tally.count(codeOf(err));
      }
      if (tally.sent >= 50) hooks.ready();
    }
  };
  const timer = setInterval(
    () => hooks.progress(`${tally.sent} stream starts (${JSON.stringify(tally.outcomes)})`),
    10_000,
  );
  try {
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  } finally {
    clearInterval(timer);
    agent.destroy();
  }
  tally.add('streamStarts', tally.sent);
  return tally.result();
}
