import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import secp256k1 from 'secp256k1';
import { type Address, getAddress, type Hex, hexToBytes, keccak256, toHex } from 'viem';
import { Recipient, type RecipientInit } from '../../../src/pm/recipient.js';
import { Sender, type SenderInit } from '../../../src/pm/sender.js';
import { PMStore } from '../../../src/pm/store.js';
import { signDigest, type TicketDomain, ticketHash } from '../../../src/pm/ticket.js';
import {
  type Payment,
  paymentTicket,
  type RecipientChain,
  type RedeemResult,
  type RoundInfo,
  type SenderInfo,
  type SignedTicket,
  type TicketParams,
  type TicketRedeemer,
} from '../../../src/pm/types.js';

export const domain: TicketDomain = {
  chainId: 31337,
  verifyingContract: '0x00000000000000000000000000000000000000b0',
};

export const ETH = 10n ** 18n;
export const GWEI = 10n ** 9n;

/** A fixed private key per label, so every run signs the same bytes. */
export function keyFor(label: string): Uint8Array {
  return hexToBytes(keccak256(toHex(`streamflow test key ${label}`)));
}

export function addressOf(key: Uint8Array): Address {
  const pub = secp256k1.publicKeyCreate(key, false);
  return getAddress(`0x${keccak256(pub.subarray(1)).slice(-40)}`);
}

export const recipientKey = keyFor('orchestrator');
export const recipientAddress = addressOf(recipientKey);

export function roundInfo(round: bigint): RoundInfo {
  return { round, blockHash: keccak256(toHex(`round ${round}`)) };
}

/** A manual clock. */
export class FakeClock {
  t = 1_700_000_000_000;
  now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

/** A chain with settable round, gas and sender funds; counts reads. */
export class FakeChain implements RecipientChain {
  round: RoundInfo = roundInfo(10n);
  gasPriceWei = 1n * GWEI;
  redeemGas = 100_000n;
  readonly senders = new Map<string, SenderInfo>();
  readonly reads = { round: 0, sender: 0, gas: 0 };

  fund(sender: Address, info: Partial<SenderInfo> = {}): void {
    this.senders.set(sender.toLowerCase(), {
      deposit: info.deposit ?? ETH,
      reserve: info.reserve ?? ETH,
      claimableReserve: info.claimableReserve ?? ETH,
      withdrawRound: info.withdrawRound ?? 0n,
    });
  }

  async currentRound(): Promise<RoundInfo> {
    this.reads.round++;
    return this.round;
  }

  async senderInfo(sender: Address): Promise<SenderInfo> {
    this.reads.sender++;
    return (
      this.senders.get(sender.toLowerCase()) ?? {
        deposit: 0n,
        reserve: 0n,
        claimableReserve: 0n,
        withdrawRound: 0n,
      }
    );
  }

  async gasPrice(): Promise<bigint> {
    this.reads.gas++;
    return this.gasPriceWei;
  }

  async estimateRedeemGas(): Promise<bigint> {
    return this.redeemGas;
  }
}

/** Records every batch; answers with `respond` (default: all redeemed). */
export class FakeRedeemer implements TicketRedeemer {
  readonly calls: SignedTicket[][] = [];
  respond: (tickets: readonly SignedTicket[]) => Promise<RedeemResult[]> | RedeemResult[] = (tickets) =>
    tickets.map((_, i) => ({ status: 'redeemed', txHash: keccak256(toHex(`tx ${this.calls.length} ${i}`)) }));

  async redeemBatch(tickets: readonly SignedTicket[]): Promise<RedeemResult[]> {
    this.calls.push([...tickets]);
    return this.respond(tickets);
  }

  get redeemed(): Hex[] {
    return this.calls.flat().map((t) => t.ticketHash);
  }
}

export function tempDir(prefix = 'sf-pm-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export const secretA = new Uint8Array(32).fill(7);

export interface Harness {
  recipient: Recipient;
  chain: FakeChain;
  clock: FakeClock;
  store: PMStore;
  notified: { count: number };
}

/** A started recipient on an in-memory store and a fake chain, with `senders` funded. */
export async function makeRecipient(
  opts: Partial<RecipientInit> & {
    senders?: Address[];
    store?: PMStore;
    secret?: Uint8Array;
    chain?: FakeChain;
    clock?: FakeClock;
  } = {},
): Promise<Harness> {
  const {
    senders = [],
    store = new PMStore(':memory:'),
    secret = secretA,
    chain = new FakeChain(),
    clock = new FakeClock(),
    ...init
  } = opts;
  for (const s of senders) if (!chain.senders.has(s.toLowerCase())) chain.fund(s);
  const notified = { count: 0 };
  const recipient = new Recipient(
    { address: recipientAddress, domain, nonceCheckpointMs: 3_600_000, ...init },
    { chain, store, secret, now: clock.now, queue: { notify: () => notified.count++ } },
  );
  await recipient.start();
  return { recipient, chain, clock, store, notified };
}

export function makeSender(
  label: string,
  funds: { deposit?: bigint; round?: bigint } = {},
  init: Partial<SenderInit> = {},
  clock?: FakeClock,
): Sender {
  return new Sender(
    { privateKey: keyFor(label), domain, ...init },
    {
      funds: { deposit: () => funds.deposit ?? ETH, currentRound: () => funds.round },
      ...(clock ? { now: clock.now } : {}),
    },
  );
}

/** A payment signed through the reference path (viem hashTypedData + signDigest), independent of Sender. */
export function referencePayment(
  params: TicketParams,
  nonces: bigint[],
  key: Uint8Array,
  d: TicketDomain = domain,
): Payment {
  return {
    sender: params.sender,
    params,
    tickets: nonces.map((senderNonce) => ({
      senderNonce,
      signature: signDigest(ticketHash(paymentTicket(params, senderNonce), d), key),
    })),
  };
}
