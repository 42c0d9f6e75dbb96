import { type Client, createClient } from '@connectrpc/connect';
import { type Address, bytesToHex, type Hex, hexToBytes, isAddressEqual } from 'viem';
import { defaultSegmentLimits } from '../media/options.js';
import { fitInside, type Profile } from '../media/profiles.js';
import { checkTiming } from '../media/timing.js';
import { type Rendition, readRendition, segmentFacts, validateSegment } from '../media/transcode.js';
import type { Payment, TicketParams } from '../pm/types.js';
import { makeChallenge } from '../rpc/challenge.js';
import {
  addressToBytes,
  bytesToAddress,
  bytesToUint,
  paymentToProto,
  profileToProto,
  ticketParamsFromProto,
} from '../rpc/convert.js';
import { fromConnectError, fromWireErrorMessage, WireError } from '../rpc/errors.js';
import { Orchestrator } from '../rpc/gen/streamflow/v1/orchestrator_pb.js';
import type { RpcTransportOptions } from '../rpc/options.js';
import { signTranscodeRequest } from '../rpc/request-auth.js';
import {
  contentHash,
  type DigestSigner,
  orchestratorInfoDigest,
  receiptDigest,
  recoverWireSigner,
} from '../rpc/signing.js';
import { createRpcTransport } from '../rpc/transport.js';

/** A verified `GetOrchestratorInfo` reply. */
export interface OrchestratorOffer {
  address: Address;
  serviceUri: string;
  /** Wei per output pixel. */
  pricePerPixel: bigint;
  params: TicketParams;
  capacityLeft: number;
  services: string[];
  regions: string[];
  /** Round trip of the call, ms. */
  latencyMs: number;
}

/** A verified `Transcode` reply. */
export interface VerifiedSegment {
  /** In the order the profiles were asked, facts read from the bytes. */
  renditions: Rendition[];
  receipt: { inputHash: Hex; signature: Hex };
  /** Params for the next payment, when the orchestrator sent fresh ones. */
  params: TicketParams | undefined;
  latencyMs: number;
}

/** A refusal carried in a `Transcode` reply (or a failed call), with fresh params when there were any. */
export class TranscodeRefused extends WireError {
  params: TicketParams | undefined;
  constructor(err: WireError, params: TicketParams | undefined) {
    super(err.code, err.message, err.details, { cause: err });
    this.params = params;
  }
}

/** The source segment as the broadcaster read it: what each rendition is checked against. */
export interface SourceFacts {
  width: number;
  height: number;
  /** Seconds. */
  duration: number;
  fps: number;
  /** Pictures. */
  frames: number;
  /** Lowest video PTS, 90 kHz: every rendition must start there (the pipeline keeps source timestamps). */
  startPts: number | undefined;
  /** HLS `CODECS` (H.264 only). */
  codecs: string | undefined;
}

/**
 * Reads a segment's facts in-process, refusing one no transcoder would take (`SegmentFormatError`): done once
 * per segment, before anyone is paid.
 */
export function sourceFactsOf(segment: Uint8Array): SourceFacts {
  const f = segmentFacts(validateSegment(segment, defaultSegmentLimits));
  const { duration, fps, frames, startPts, codecs } = f;
  return { width: f.width ?? 0, height: f.height ?? 0, duration, fps, frames, startPts, codecs };
}

export interface SegmentJob {
  /** Facts of `segment`; renditions must keep its aspect ratio, duration and the profile's frame rate. */
  source: SourceFacts;
  streamId: string;
  seq: number;
  durationMs: number;
  profiles: readonly Profile[];
  segment: Uint8Array;
  payment: Payment;
}

/**
 * One orchestrator as the broadcaster talks to it: a long-lived HTTP/2 connection, negotiation with a signed
 * challenge, and transcode calls whose replies are checked before anyone uses them: the info and the receipt
 * must be signed by the orchestrator's on-chain address, every rendition must hash to what the receipt says,
 * decode, and have the size the profile asks for.
 */
export class OrchestratorClient {
  private readonly client: Client<typeof Orchestrator>;
  private readonly controller = new AbortController();
  /** Learned from the first verified info reply when the candidate came from a static list. */
  address: Address | undefined;

  constructor(
    readonly serviceUri: string,
    expected: Address | undefined,
    private readonly deps: {
      signer: DigestSigner & { address: Address };
      transport?: Omit<RpcTransportOptions, 'signal'>;
    },
  ) {
    this.address = expected;
    this.client = createClient(
      Orchestrator,
      createRpcTransport(serviceUri, { ...deps.transport, signal: this.controller.signal }),
    );
  }

  /** Asks for price and params, proving who asks with a fresh signed challenge; verifies the signed reply. */
  async getInfo(
    req: { service?: string; region?: string },
    opts: { timeoutMs: number; signal?: AbortSignal },
  ): Promise<OrchestratorOffer> {
    const started = performance.now();
    const broadcaster = this.deps.signer.address;
    // The challenge names the orchestrator; a static entry not yet known is asked with the zero address
    // replaced by what it claims, so the first contact costs one extra round trip.
    const target = this.address;
    if (!target) {
      const probe = await this.call(
        req,
        broadcaster,
        '0x0000000000000000000000000000000000000000',
        opts,
      ).catch((err: unknown) => err);
      const claimed = probe instanceof WireError ? probe.details.orchestrator : undefined;
      if (!claimed) throw probe instanceof Error ? probe : new WireError('RpcFailed', String(probe));
      this.address = claimed as Address;
    }
    const { info, challenge } = await this.call(req, broadcaster, this.address as Address, opts);
    const latencyMs = performance.now() - started;
    // The reply must answer this request: an old signed reply replayed by someone in the middle is refused.
    if (bytesToHex(info.challenge) !== challenge) {
      throw new WireError(
        'InvalidSignature',
        `orchestrator info from ${this.serviceUri} answers another challenge`,
      );
    }
    const address = bytesToAddress(info.address, 'info.address');
    const params = ticketParamsFromProto(info.ticketParams, 'info.ticketParams');
    const pricePerPixel = bytesToUint(info.pricePerPixel, 'info.pricePerPixel');
    const signer = await recoverOrThrow(
      orchestratorInfoDigest({
        address,
        serviceUri: info.serviceUri,
        pricePerPixel,
        ticketParams: params,
        services: info.services,
        regions: info.regions,
        challenge,
        broadcaster,
      }),
      info.signature,
      'InvalidSignature',
    );
    if (!isAddressEqual(signer, address) || !isAddressEqual(address, this.address as Address)) {
      throw new WireError(
        'InvalidSignature',
        `orchestrator info from ${this.serviceUri} is signed by ${signer}, expected ${this.address}`,
        { signer, expected: String(this.address) },
      );
    }
    if (!isAddressEqual(params.recipient, address) || !isAddressEqual(params.sender, broadcaster)) {
      throw new WireError('InvalidTicketParams', 'ticket params name another recipient or sender');
    }
    return {
      address,
      serviceUri: info.serviceUri,
      pricePerPixel,
      params,
      capacityLeft: info.capacityLeft,
      services: info.services,
      regions: info.regions,
      latencyMs,
    };
  }

  private async call(
    req: { service?: string; region?: string },
    broadcaster: Address,
    orchestrator: Address,
    opts: { timeoutMs: number; signal?: AbortSignal },
  ) {
    const c = await makeChallenge(this.deps.signer, orchestrator);
    try {
      const info = await this.client.getOrchestratorInfo(
        {
          broadcaster: addressToBytes(broadcaster),
          challenge: hexToBytes(c.challenge),
          issuedAtMs: c.issuedAtMs,
          signature: hexToBytes(c.signature),
          serviceId: req.service ?? '',
          region: req.region ?? '',
        },
        { timeoutMs: opts.timeoutMs, ...(opts.signal ? { signal: opts.signal } : {}) },
      );
      return { info, challenge: c.challenge.toLowerCase() as Hex };
    } catch (err) {
      throw fromConnectError(err);
    }
  }

  /**
   * Sends one segment with its payment. Resolves with verified renditions; rejects with
   * {@link TranscodeRefused} (a coded refusal, maybe with fresh params) or a `WireError` for a failed call or a
   * reply that does not verify (`InvalidReceipt`, `RenditionMismatch`).
   */
  async transcode(
    job: SegmentJob,
    opts: { timeoutMs: number; signal?: AbortSignal },
  ): Promise<VerifiedSegment> {
    const expected = this.address;
    if (!expected) throw new WireError('Unavailable', 'negotiate (getInfo) before sending segments');
    const started = performance.now();
    // Hashed once: the request signature commits to it and the receipt must name it.
    const inputHash = contentHash(job.segment);
    const metadata = {
      streamId: job.streamId,
      seq: BigInt(job.seq),
      durationMs: Math.round(job.durationMs),
      profiles: job.profiles.map(profileToProto),
    };
    // Signed by the session's owner, so nobody else can spend its credit (docs/rpc.md "Sessions").
    const signed = await signTranscodeRequest(this.deps.signer, {
      orchestrator: expected,
      sender: job.payment.sender,
      streamId: metadata.streamId,
      seq: metadata.seq,
      segmentHash: inputHash,
      metadata,
    });
    let reply: Awaited<ReturnType<Client<typeof Orchestrator>['transcode']>>;
    try {
      reply = await this.client.transcode(
        {
          metadata,
          segment: job.segment,
          payment: paymentToProto(job.payment),
          issuedAtMs: signed.issuedAtMs,
          nonce: signed.nonce,
          signature: hexToBytes(signed.signature),
        },
        { timeoutMs: opts.timeoutMs, ...(opts.signal ? { signal: opts.signal } : {}) },
      );
    } catch (err) {
      throw fromConnectError(err);
    }
    const params = reply.ticketParams ? ticketParamsFromProto(reply.ticketParams) : undefined;
    if (reply.result.case !== 'ok') {
      const err =
        reply.result.case === 'error'
          ? fromWireErrorMessage(reply.result.value)
          : new WireError('InvalidMessage', 'transcode reply without a result');
      throw new TranscodeRefused(err, params);
    }
    const { renditions: sent, receipt } = reply.result.value;
    if (!receipt) throw new WireError('InvalidReceipt', 'transcode reply without a receipt');
    if (
      receipt.streamId !== job.streamId ||
      receipt.seq !== BigInt(job.seq) ||
      bytesToHex(receipt.inputHash) !== inputHash
    ) {
      throw new WireError('InvalidReceipt', 'the receipt is for another segment', { seq: String(job.seq) });
    }
    if (sent.length !== job.profiles.length || receipt.renditions.length !== job.profiles.length) {
      throw new WireError(
        'RenditionMismatch',
        `asked for ${job.profiles.length} renditions, got ${sent.length} (receipt lists ${receipt.renditions.length})`,
      );
    }
    const renditions: Rendition[] = [];
    for (const [i, profile] of job.profiles.entries()) {
      const r = sent[i];
      const listed = receipt.renditions[i];
      if (!r || !listed || r.profile !== profile.name || listed.profile !== profile.name) {
        throw new WireError('RenditionMismatch', `rendition ${i} is not ${profile.name}`, {
          profile: profile.name,
        });
      }
      const bytes = Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength);
      if (contentHash(bytes) !== bytesToHex(listed.hash)) {
        throw new WireError(
          'RenditionMismatch',
          `rendition ${profile.name} does not match its receipt hash`,
          {
            profile: profile.name,
          },
        );
      }
      const facts = readRendition(profile, bytes);
      if (!facts) {
        throw new WireError('RenditionMismatch', `rendition ${profile.name} holds no decodable video`, {
          profile: profile.name,
        });
      }
      checkRendition(facts, profile, job.source);
      renditions.push(facts);
    }
    const signer = await recoverOrThrow(
      receiptDigest({
        streamId: job.streamId,
        seq: BigInt(job.seq),
        inputHash,
        renditions: receipt.renditions.map((x) => ({ profile: x.profile, hash: bytesToHex(x.hash) })),
      }),
      receipt.signature,
      'InvalidReceipt',
    );
    if (!isAddressEqual(signer, expected)) {
      throw new WireError('InvalidReceipt', `the receipt is signed by ${signer}, not ${expected}`);
    }
    return {
      renditions,
      receipt: { inputHash, signature: bytesToHex(receipt.signature) },
      params,
      latencyMs: performance.now() - started,
    };
  }

  /** Closes the connection; calls in flight fail with `Canceled`. Idempotent. */
  close(): void {
    this.controller.abort();
  }
}

/** Recovers a wire signature's signer; a malformed signature is the peer's fault, coded as such. */
async function recoverOrThrow(digest: Hex, signature: Uint8Array, code: string): Promise<Address> {
  try {
    return await recoverWireSigner(digest, signature);
  } catch (err) {
    throw new WireError(
      code,
      `malformed signature: ${(err as Error).message.split('\n')[0]}`,
      {},
      { cause: err },
    );
  }
}

/**
 * The cheap checks every rendition gets (the deep, sampled content check is the verifier's): its size is the
 * source fitted in the profile's box (aspect kept, sides even, 2 px of rounding allowed), its frame rate the
 * profile's, and its time the source's ({@link checkTiming}: first PTS and duration within a frame, the
 * profile's rate of frames over the span ±1), so the renditions of another segment are refused too.
 */
export function checkRendition(r: Rendition, profile: Profile, source: SourceFacts): void {
  const mismatch = (why: string) =>
    new WireError('RenditionMismatch', `rendition ${profile.name} ${why}`, { profile: profile.name });
  if (source.width > 0 && source.height > 0) {
    const want = fitInside(source.width / source.height, profile);
    if (Math.abs(r.width - want.width) > 2 || Math.abs(r.height - want.height) > 2) {
      throw mismatch(
        `is ${r.width}×${r.height}, not fitted to ${profile.width}×${profile.height} (the source fitted is ${want.width}×${want.height})`,
      );
    }
  }
  if (Math.abs(r.fps - profile.fps) > Math.max(1, profile.fps * 0.05)) {
    throw mismatch(`runs at ${r.fps} fps, not ${profile.fps}`);
  }
  const timing = checkTiming(r, source, profile.fps);
  if (timing) {
    throw new WireError('RenditionMismatch', `rendition ${profile.name} ${timing.message}`, {
      profile: profile.name,
      reason: timing.reason,
    });
  }
}
