import type { ConnectError } from '@connectrpc/connect';
import { toConnectError, WireError } from './errors.js';

/** Limits of {@link Admission}. */
export interface AdmissionLimits {
  /** Request bytes received and not yet released, summed over every call in flight. */
  maxBytes: number;
  /** Job calls (e.g. `Transcode`) whose request arrived and whose reply is not finished. */
  maxJobs: number;
  /**
   * Share of `maxBytes` and of `maxJobs` one remote address may hold, within (0, 1]; 1 turns the per-address
   * limit off. @default 1
   */
  maxShare?: number;
}

/**
 * Counts what the RPC server holds for calls in flight: request bytes actually received (not declared, so a
 * stream that declares a large message and drips it costs what it sent) and jobs being handled, in total and
 * per remote address. Above either limit a call is refused with `OrchestratorBusy`, which callers fail over on,
 * instead of the node running out of memory or processes; the per-address share keeps one address (a flood of
 * connections from one host) from holding every slot, so another address always finds room.
 */
export class Admission {
  private readonly limits: AdmissionLimits;
  private readonly perAddress: { bytes: number; jobs: number };
  private heldBytes = 0;
  private heldJobs = 0;
  /** What each remote address holds; an address that holds nothing has no entry. */
  private readonly held = new Map<string, { bytes: number; jobs: number }>();
  /** Calls refused because a limit was reached, by limit (`address*`: the per-address share). */
  readonly refused = { bytes: 0, jobs: 0, addressBytes: 0, addressJobs: 0 };

  constructor(limits: AdmissionLimits) {
    const share = limits.maxShare ?? 1;
    if (!(share > 0 && share <= 1)) throw new RangeError(`maxShare must be within (0, 1], got ${share}`);
    this.limits = limits;
    this.perAddress = {
      bytes: Math.floor(limits.maxBytes * share),
      // At least one job, or a small `maxJobs` would refuse every address.
      jobs: Math.max(1, Math.floor(limits.maxJobs * share)),
    };
  }

  get bytes(): number {
    return this.heldBytes;
  }

  get jobs(): number {
    return this.heldJobs;
  }

  /** What `address` holds now. */
  heldBy(address: string): { bytes: number; jobs: number } {
    const h = this.held.get(address);
    return { bytes: h?.bytes ?? 0, jobs: h?.jobs ?? 0 };
  }

  /**
   * Takes `n` more bytes for `address`, or throws `OrchestratorBusy` (as a ConnectError) when that would pass
   * the total limit or the address's share of it.
   */
  takeBytes(n: number, address: string): void {
    if (this.heldBytes + n > this.limits.maxBytes) {
      this.refused.bytes++;
      throw busy(
        'inFlightBytes',
        `${this.heldBytes + n} request bytes in flight, above ${this.limits.maxBytes}`,
      );
    }
    const h = this.held.get(address);
    const mine = (h?.bytes ?? 0) + n;
    if (mine > this.perAddress.bytes) {
      this.refused.addressBytes++;
      throw busy(
        'inFlightBytesPerAddress',
        `${mine} request bytes in flight from your address, above its share of ${this.perAddress.bytes}`,
      );
    }
    this.heldBytes += n;
    if (h) h.bytes = mine;
    else this.held.set(address, { bytes: mine, jobs: 0 });
  }

  releaseBytes(n: number, address: string): void {
    if (n <= 0) return;
    this.heldBytes = Math.max(0, this.heldBytes - n);
    const h = this.held.get(address);
    if (!h) return;
    h.bytes = Math.max(0, h.bytes - n);
    if (h.bytes === 0 && h.jobs === 0) this.held.delete(address);
  }

  /**
   * Takes a job slot for `address`, or throws `OrchestratorBusy` (as a ConnectError) when all are taken or the
   * address holds its share.
   */
  takeJob(address: string): void {
    if (this.heldJobs >= this.limits.maxJobs) {
      this.refused.jobs++;
      throw busy('inFlightJobs', `${this.heldJobs} jobs in flight, the limit`);
    }
    const h = this.held.get(address);
    if ((h?.jobs ?? 0) >= this.perAddress.jobs) {
      this.refused.addressJobs++;
      throw busy(
        'inFlightJobsPerAddress',
        `${h?.jobs ?? 0} jobs in flight from your address, its share of ${this.limits.maxJobs}`,
      );
    }
    this.heldJobs++;
    if (h) h.jobs++;
    else this.held.set(address, { bytes: 0, jobs: 1 });
  }

  releaseJob(address: string): void {
    this.heldJobs = Math.max(0, this.heldJobs - 1);
    const h = this.held.get(address);
    if (!h) return;
    h.jobs = Math.max(0, h.jobs - 1);
    if (h.bytes === 0 && h.jobs === 0) this.held.delete(address);
  }

  /** Remote addresses holding something now. */
  get addresses(): number {
    return this.held.size;
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
