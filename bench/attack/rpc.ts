/** The attacker's side of the Orchestrator service: one `Transcode` call, its reply reduced to a tally. */
import { connect as netConnect, type Socket } from 'node:net';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { type Client, createClient } from '@connectrpc/connect';
import { createGrpcTransport, Http2SessionManager } from '@connectrpc/connect-node';
import { type Address, hexToBytes } from 'viem';
import type { TicketParams } from '../../src/pm/types.js';
import { ticketParamsFromProto } from '../../src/rpc/convert.js';
import { fromConnectError } from '../../src/rpc/errors.js';
import type { Profile as ProfileMessage } from '../../src/rpc/gen/streamflow/v1/common_pb.js';
import {
  Orchestrator,
  type TranscodeRequestSchema,
} from '../../src/rpc/gen/streamflow/v1/orchestrator_pb.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../../src/rpc/options.js';
import { signTranscodeRequest } from '../../src/rpc/request-auth.js';
import { contentHash, type DigestSigner } from '../../src/rpc/signing.js';
import { createRpcTransport } from '../../src/rpc/transport.js';
import { codeOf } from './common.js';

export type TranscodeRequestInit = MessageInitShape<typeof TranscodeRequestSchema>;
export type OrchestratorRpc = Client<typeof Orchestrator>;

/**
 * A client on a connection of its own, from `localAddress` (the attacker's own loopback address; the
 * project's `createRpcTransport` does not take one, so this is its transport with that one option added);
 * aborting `signal` closes the connection.
 */
export function connect(url: string, signal: AbortSignal, localAddress: string | undefined): OrchestratorRpc {
  if (localAddress === undefined) return createClient(Orchestrator, createRpcTransport(url, { signal }));
  // No keep-alive pings: a connection lives for one payment, and a ping timing out on an overloaded orchestrator
  // surfaces as an 'error' event nobody listens to.
  const sessionManager = new Http2SessionManager(
    url,
    {},
    { createConnection: fromAddress(url, localAddress) },
  );
  signal.addEventListener('abort', () => sessionManager.abort(), { once: true });
  if (signal.aborted) sessionManager.abort();
  const transport = createGrpcTransport({
    baseUrl: url,
    sessionManager,
    readMaxBytes: DEFAULT_MAX_MESSAGE_BYTES,
    writeMaxBytes: DEFAULT_MAX_MESSAGE_BYTES,
    useBinaryFormat: true,
    acceptCompression: [],
  });
  return createClient(Orchestrator, transport);
}

/** An HTTP/2 `createConnection` that dials `url` from `localAddress` (h2c only: the bench's RPC is cleartext). */
export function fromAddress(url: string, localAddress: string): () => Socket {
  const u = new URL(url);
  return () => netConnect({ host: u.hostname, port: Number(u.port), localAddress });
}

/** How one call ended: `ok` with the renditions it returned, or the refusal's or failure's code. */
export interface CallOutcome {
  outcome: string;
  renditions: number;
  /** Fresh params the reply carried (refusals carry them too). */
  params: TicketParams | undefined;
}

/** Sends one `Transcode` request; never throws (a failed call is an outcome). */
export async function transcodeOnce(
  rpc: OrchestratorRpc,
  req: TranscodeRequestInit,
  opts: { timeoutMs: number; signal: AbortSignal },
): Promise<CallOutcome> {
  try {
    const reply = await rpc.transcode(req, { timeoutMs: opts.timeoutMs, signal: opts.signal });
    let params: TicketParams | undefined;
    try {
      params = reply.ticketParams ? ticketParamsFromProto(reply.ticketParams) : undefined;
    } catch {
      params = undefined;
    }
    if (reply.result.case === 'ok') {
      return { outcome: 'ok', renditions: reply.result.value.renditions.length, params };
    }
    const code = reply.result.case === 'error' ? reply.result.value.code || 'error' : 'noResult';
    return { outcome: code, renditions: 0, params };
  } catch (err) {
    return { outcome: codeOf(fromConnectError(err)), renditions: 0, params: undefined };
  }
}

/**
 * The signature fields of a `TranscodeRequest` (`issuedAtMs`, `nonce`, `signature`) made by `signer` for
 * `req` with the project's own signer (docs/rpc.md "Sessions").
 */
export async function signatureFields(
  signer: DigestSigner,
  orchestrator: Address,
  sender: Address,
  req: { metadata: SegmentMetadataInit; segment: Uint8Array },
): Promise<Record<string, unknown>> {
  const m = req.metadata;
  const signed = await signTranscodeRequest(signer, {
    orchestrator,
    sender,
    streamId: m.streamId,
    seq: m.seq,
    segmentHash: contentHash(req.segment),
    metadata: { durationMs: m.durationMs, profiles: m.profiles },
  });
  return { issuedAtMs: signed.issuedAtMs, nonce: signed.nonce, signature: hexToBytes(signed.signature) };
}

/** The metadata every attack builds (profiles already in wire form). */
export interface SegmentMetadataInit {
  streamId: string;
  seq: bigint;
  durationMs: number;
  profiles: ProfileMessage[];
}

/** A request with the signature fields added (the schema of a tree without them ignores unknown fields). */
export function withSignature(
  req: TranscodeRequestInit,
  fields: Record<string, unknown>,
): TranscodeRequestInit {
  return { ...req, ...fields } as TranscodeRequestInit;
}
