import { create } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { StreamflowError } from '../node/errors.js';
import { PAYMENT_ERROR_CODES } from '../pm/errors.js';
import { type WireError as WireErrorMessage, WireErrorSchema } from './gen/streamflow/v1/common_pb.js';

/**
 * Codes that cross the wire: the pm codes of src/pm/errors.ts, then the job negotiation's own. Codes of the
 * last group are made on the receiving side from a transport failure that carried no code of ours.
 */
export const WIRE_ERROR_CODES = [
  // pm refusals keep their code on the wire
  ...PAYMENT_ERROR_CODES,
  // job negotiation
  'SegmentFormatDidntMatchJobInputParams',
  'OrchestratorBusy',
  'InvalidChallenge',
  'InvalidMessage',
  'Unauthenticated',
  'TranscodeFailed',
  'ShuttingDown',
  'Internal',
  // transport, receiving side only
  'MessageTooLarge',
  'Unavailable',
  'Timeout',
  'Canceled',
  'Unimplemented',
  'RpcFailed',
] as const;

export type WireErrorCode = (typeof WIRE_ERROR_CODES)[number];

/** Whether a code received over the wire is one this build knows. */
export function isWireErrorCode(code: string): code is WireErrorCode {
  return (WIRE_ERROR_CODES as readonly string[]).includes(code);
}

/** Facts of a wire error; values are strings on the wire (bigints in decimal). */
export type WireErrorDetails = Record<string, string>;

/** Header (gRPC trailer) that repeats the code, for peers that do not decode error details. */
export const WIRE_ERROR_CODE_HEADER = 'streamflow-error-code';

const CONNECT_CODE: Partial<Record<WireErrorCode, Code>> = {
  LowPMBalance: Code.FailedPrecondition,
  SenderUnlocking: Code.FailedPrecondition,
  TicketParamsExpired: Code.FailedPrecondition,
  InvalidTicketExpiry: Code.FailedPrecondition,
  RoundNotInitialized: Code.Unavailable,
  TooManyErrors: Code.ResourceExhausted,
  OrchestratorBusy: Code.Unavailable,
  ShuttingDown: Code.Unavailable,
  Unavailable: Code.Unavailable,
  Unauthenticated: Code.Unauthenticated,
  MessageTooLarge: Code.ResourceExhausted,
  Timeout: Code.DeadlineExceeded,
  Canceled: Code.Canceled,
  Unimplemented: Code.Unimplemented,
  Internal: Code.Internal,
  TranscodeFailed: Code.Internal,
  RpcFailed: Code.Unknown,
};

/**
 * A protocol error with a stable `code` that survives the trip between nodes: thrown by a handler, it
 * reaches the caller as a `WireError` with the same code and details (see {@link toConnectError} and
 * {@link fromConnectError}). Branch on `code`; unknown codes from a newer peer arrive as they were sent.
 */
export class WireError extends StreamflowError<WireErrorCode | (string & {}), WireErrorDetails> {
  constructor(
    code: WireErrorCode | (string & {}),
    message: string,
    details: WireErrorDetails = {},
    options?: { cause?: unknown },
  ) {
    super(code, message, details, options);
  }

  /** Wraps any Streamflow error (a `PaymentError`, ...) keeping its code; details become strings. */
  static from(err: StreamflowError): WireError {
    if (err instanceof WireError) return err;
    return new WireError(err.code, err.message, stringifyDetails(err.details), { cause: err });
  }
}

function stringifyDetails(details: unknown): WireErrorDetails {
  const out: WireErrorDetails = {};
  if (details === null || typeof details !== 'object') return out;
  for (const [key, value] of Object.entries(details)) {
    if (value === undefined) continue;
    out[key] =
      typeof value === 'string' ? value : typeof value === 'bigint' ? value.toString() : safeJson(value);
  }
  return out;
}

function safeJson(value: unknown): string {
  try {
    return (
      JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) ?? String(value)
    );
  } catch {
    return String(value);
  }
}

/** The `WireError` protobuf message for an error, e.g. for `TranscodeReply.error`. */
export function toWireErrorMessage(err: WireError): WireErrorMessage {
  return create(WireErrorSchema, { code: err.code, message: err.message, details: { ...err.details } });
}

/** The error a `WireError` protobuf message stands for. */
export function fromWireErrorMessage(msg: WireErrorMessage): WireError {
  return new WireError(msg.code || 'RpcFailed', msg.message, { ...msg.details });
}

/**
 * A ConnectError carrying the error's code twice: as a `streamflow.v1.WireError` detail (code, message,
 * details) and in the `streamflow-error-code` header. Non-Streamflow errors become `Internal` without their
 * message, which may hold local paths or secrets.
 */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  const wire =
    err instanceof StreamflowError
      ? WireError.from(err)
      : new WireError('Internal', 'internal error in the remote node; see its log', {}, { cause: err });
  const code = isWireErrorCode(wire.code) ? (CONNECT_CODE[wire.code] ?? Code.InvalidArgument) : Code.Unknown;
  return new ConnectError(
    wire.message,
    code,
    { [WIRE_ERROR_CODE_HEADER]: wire.code },
    [{ desc: WireErrorSchema, value: toWireErrorMessage(wire) }],
    err,
  );
}

/**
 * The `WireError` a failed call stands for: the peer's own code when it sent one, otherwise a code made
 * from the transport failure (`MessageTooLarge`, `Unavailable`, `Timeout`, `Canceled`, `Unimplemented`,
 * `RpcFailed`) with the Connect code in `details.connectCode`.
 */
export function fromConnectError(err: unknown): WireError {
  if (err instanceof WireError) return err;
  const ce = ConnectError.from(err);
  const [detail] = ce.findDetails(WireErrorSchema);
  if (detail)
    return new WireError(detail.code || 'RpcFailed', detail.message, { ...detail.details }, { cause: ce });
  const headerCode = ce.metadata.get(WIRE_ERROR_CODE_HEADER);
  const details = { connectCode: Code[ce.code] };
  if (headerCode) return new WireError(headerCode, ce.rawMessage, details, { cause: ce });
  return new WireError(transportCode(ce.code), transportMessage(ce), details, { cause: ce });
}

function transportCode(code: Code): WireErrorCode {
  switch (code) {
    // Our handlers never raise resource_exhausted without a WireError detail, so a bare one is Connect's
    // own size check (readMaxBytes/writeMaxBytes) on either side.
    case Code.ResourceExhausted:
      return 'MessageTooLarge';
    case Code.Unavailable:
      return 'Unavailable';
    case Code.DeadlineExceeded:
      return 'Timeout';
    case Code.Canceled:
      return 'Canceled';
    case Code.Unimplemented:
      return 'Unimplemented';
    default:
      return 'RpcFailed';
  }
}

function transportMessage(ce: ConnectError): string {
  switch (ce.code) {
    case Code.ResourceExhausted:
      return `message refused as too large (${ce.rawMessage}); raise maxMessageBytes on both sides or send less`;
    case Code.Unavailable:
      return `peer unreachable (${ce.rawMessage}); check its URL and that it is running`;
    default:
      return ce.rawMessage;
  }
}
