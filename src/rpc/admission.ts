import type { ConnectError } from '@connectrpc/connect';
import { toConnectError, WireError } from './errors.js';

/** Limits of {@link Admission}. */
export interface AdmissionLimits {
  /** Request bytes received and not yet released, summed over every call in flight. */
  maxBytes: number;
  /** Job calls (e.g. `Transcode`) whose request arrived and whose reply is not finished. */
  maxJobs: number;
}

/**
 * Counts what the RPC server holds for calls in flight: request bytes actually received (not declared, so a
 * stream that declares a large message and drips it costs what it sent) and jobs being handled. Above either
 * limit a call is refused with `OrchestratorBusy`, which callers fail over on, instead of the node running out
 * of memory or processes.
 */
export class Admission {
  private readonly limits: AdmissionLimits;
  private heldBytes = 0;
  private heldJobs = 0;
  /** Calls refused because a limit was reached, by limit. */
  readonly refused = { bytes: 0, jobs: 0 };

  constructor(limits: AdmissionLimits) {
    this.limits = limits;
  }

  get bytes(): number {
    return this.heldBytes;
  }

  get jobs(): number {
    return this.heldJobs;
  }

  /** Takes `n` more bytes, or throws `OrchestratorBusy` (as a ConnectError) when that would pass the limit. */
  takeBytes(n: number): void {
    if (this.heldBytes + n > this.limits.maxBytes) {
      this.refused.bytes++;
      throw busy(
        'inFlightBytes',
        `${this.heldBytes + n} request bytes in flight, above ${this.limits.maxBytes}`,
      );
    }
    this.heldBytes += n;
  }

  releaseBytes(n: number): void {
    this.heldBytes = Math.max(0, this.heldBytes - n);
  }

  /** Takes a job slot, or throws `OrchestratorBusy` (as a ConnectError) when all are taken. */
  takeJob(): void {
    if (this.heldJobs >= this.limits.maxJobs) {
      this.refused.jobs++;
      throw busy('inFlightJobs', `${this.heldJobs} jobs in flight, the limit`);
    }
    this.heldJobs++;
  }

  releaseJob(): void {
    this.heldJobs = Math.max(0, this.heldJobs - 1);
  }
}

function busy(reason: string, what: string): ConnectError {
  return toConnectError(
    new WireError('OrchestratorBusy', `node busy: ${what}; retry later or use another node`, { reason }),
  );
}

/** The error a request whose message declares more than the procedure's limit gets. */
export function tooLarge(procedure: string, declared: number, limit: number): ConnectError {
  return toConnectError(
    new WireError(
      'MessageTooLarge',
      `request message too large: ${declared} bytes, above the ${limit}-byte limit of ${procedure}`,
      { declared: String(declared), limit: String(limit) },
    ),
  );
}

/** The error a request that is not a well-formed message of its procedure gets (InvalidArgument). */
export function malformed(procedure: string, reason: string, message: string): ConnectError {
  return toConnectError(new WireError('InvalidMessage', `${procedure}: ${message}`, { reason }));
}
