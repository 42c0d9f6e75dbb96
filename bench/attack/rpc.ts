/** The attacker's side of the Orchestrator service: one `Transcode` call, its reply reduced to a tally. */
import type { MessageInitShape } from '@bufbuild/protobuf';
import { type Client, createClient } from '@connectrpc/connect';
import type { TicketParams } from '../../src/pm/types.js';
import { ticketParamsFromProto } from '../../src/rpc/convert.js';
import { fromConnectError } from '../../src/rpc/errors.js';
import {
  Orchestrator,
  type TranscodeRequestSchema,
} from '../../src/rpc/gen/streamflow/v1/orchestrator_pb.js';
import { createRpcTransport } from '../../src/rpc/transport.js';
import { codeOf } from './common.js';

export type TranscodeRequestInit = MessageInitShape<typeof TranscodeRequestSchema>;
export type OrchestratorRpc = Client<typeof Orchestrator>;

/** A client on a connection of its own; aborting `signal` closes the connection. */
export function connect(url: string, signal: AbortSignal): OrchestratorRpc {
  return createClient(Orchestrator, createRpcTransport(url, { signal }));
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
