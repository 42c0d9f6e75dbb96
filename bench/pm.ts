/**
 * Payment benchmark: ticket signing and full recipient validation on one core, against bare libsecp256k1
 * public-key recovery of the same signatures in the same run (the physical limit of validation). Prints one
 * flat JSON object and writes it to bench/results/pm.json. Gas figures need the TicketBroker contract; see
 * `measureGas`.
 *
 * `node dist/bench/pm.js [tickets]` (default 20_000 tickets per measurement).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import secp256k1 from 'secp256k1';
import { type Address, hexToBytes, keccak256, toHex } from 'viem';
import { TicketHasher } from '../src/pm/hasher.js';
import { Recipient } from '../src/pm/recipient.js';
import { Sender } from '../src/pm/sender.js';
import { PMStore } from '../src/pm/store.js';
import type { TicketDomain } from '../src/pm/ticket.js';
import { type Payment, paymentTicket, type RecipientChain, type TicketParams } from '../src/pm/types.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = here.endsWith(join('dist', 'bench')) ? join(here, '../..') : join(here, '..');
const TICKETS = Number(process.argv[2] ?? 20_000);
const ROUNDS = 5;
const domain: TicketDomain = {
  chainId: 31337,
  verifyingContract: '0x00000000000000000000000000000000000000b0',
};

function progress(msg: string) {
  process.stderr.write(`[bench:pm] ${msg}\n`);
}

/** Figures that need the TicketBroker on anvil. */
interface GasFigures {
  'gas.fundDepositAndReserve': number | null;
  'gas.redeem.single': number | null;
  'gas.redeem.batch10.perTicket': number | null;
  'gas.redeem.reserveClaim': number | null;
}

/**
 * TODO(lead): measure against the TicketBroker once it exists — start anvil and deploy as bench/gas.ts does,
 * then take receipt gasUsed of: a first `fundDepositAndReserve`; `redeemWinningTicket` of one ticket paid from
 * the deposit; `batchRedeemWinningTickets` of 10 tickets ÷ 10; a redemption whose deposit is empty so it is
 * paid from the reserve. Sign the tickets with `Sender` (winProb 2^256 − 1 so each wins) and reveal the
 * recipientRand committed to in the params. Targets: ≤ 90_000, ≤ 110_000, ≤ 60_000, ≤ 160_000.
 */
async function measureGas(): Promise<GasFigures> {
  return {
    'gas.fundDepositAndReserve': null,
    'gas.redeem.single': null,
    'gas.redeem.batch10.perTicket': null,
    'gas.redeem.reserveClaim': null,
  };
}

const chain: RecipientChain = {
  currentRound: async () => ({ round: 10n, blockHash: keccak256(toHex('round 10')) }),
  senderInfo: async () => ({
    deposit: 10n ** 20n,
    reserve: 10n ** 20n,
    claimableReserve: 10n ** 20n,
    withdrawRound: 0n,
  }),
  gasPrice: async () => 10n ** 9n,
  estimateRedeemGas: async () => 100_000n,
};

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

async function main() {
  const senderKey = hexToBytes(keccak256(toHex('bench sender')));
  const recipientAddress: Address = '0x00000000000000000000000000000000000000a1';
  const store = new PMStore(':memory:');
  // EV of 100 wei: winProb ≈ 1e-14, so no ticket wins and no SQLite write happens (non-winning tickets never
  // touch the store; winners are a separate, fsync-bound path).
  const recipient = new Recipient(
    { address: recipientAddress, domain, expectedValue: 100n, nonceCheckpointMs: 3_600_000 },
    { chain, store, secret: new Uint8Array(32).fill(1) },
  );
  await recipient.start();
  const sender = new Sender(
    { privateKey: senderKey, domain, maxTicketsPerPayment: TICKETS },
    { funds: { deposit: () => 10n ** 20n } },
  );
  const params: TicketParams = await recipient.ticketParams(sender.address);
  const ev = (params.faceValue * params.winProb) >> 256n;

  // Signing: the Sender's whole path (params checks, struct hash, libsecp256k1 sign, hex encoding).
  const sign = (n: number): { payments: Payment[]; seconds: number } => {
    const t0 = performance.now();
    const payments: Payment[] = [];
    for (let i = 0; i < n; i++) payments.push(sender.createPayment(params, ev));
    return { payments, seconds: (performance.now() - t0) / 1000 };
  };
  progress(`warming up (${TICKETS} tickets per measurement, ${ROUNDS} rounds, ${cpus()[0]?.model ?? 'cpu'})`);
  const warm = sign(2_000);
  const signRates: number[] = [];
  const batches: Payment[][] = [];
  for (let r = 0; r < ROUNDS + 1; r++) {
    const { payments, seconds } = sign(TICKETS);
    if (r > 0) signRates.push(TICKETS / seconds);
    batches.push(payments);
  }

  // The bare recovery of the very signatures each round validates, with their digests.
  const hasher = new TicketHasher(domain);
  const recoverInputs = batches.map((payments) =>
    payments.map((p) => {
      const t = p.tickets[0];
      if (!t) throw new Error('no ticket');
      const sig = hexToBytes(t.signature as `0x${string}`);
      return {
        sig: sig.slice(0, 64),
        recid: (sig[64] as number) - 27,
        digest: hasher.hash(paymentTicket(params, t.senderNonce)),
      };
    }),
  );
  const recover = (inputs: { sig: Uint8Array; recid: number; digest: Uint8Array }[]): number => {
    const t0 = performance.now();
    for (const x of inputs) secp256k1.ecdsaRecover(x.sig, x.recid, x.digest, false);
    return inputs.length / ((performance.now() - t0) / 1000);
  };

  // Full validation: payment checks, nonce, low-s, EIP-712 digest, recovery, signer, lottery, credit, and
  // the fresh params of the reply — one ticket per payment, the worst case.
  const ctx = { session: 'bench' };
  const validate = async (payments: Payment[]): Promise<number> => {
    const t0 = performance.now();
    for (const p of payments) {
      const r = await recipient.receivePayment(p, ctx);
      if (r.accepted !== 1) throw new Error(`ticket refused: ${r.errors[0]?.code}`);
    }
    return payments.length / ((performance.now() - t0) / 1000);
  };
  await validate(warm.payments);
  recover(recoverInputs[0] ?? []);

  const recoverRates: number[] = [];
  const validateRates: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    recoverRates.push(recover(recoverInputs[r + 1] ?? []));
    validateRates.push(await validate(batches[r + 1] as Payment[]));
    progress(
      `round ${r + 1}: recover ${recoverRates[r]?.toFixed(0)}/s, validate ${validateRates[r]?.toFixed(0)}/s`,
    );
  }

  // Ten tickets per payment, as a segment usually carries a few: payment-level work is shared.
  const batch10: Payment[] = [];
  for (let i = 0; i < TICKETS / 10; i++) batch10.push(sender.createPayment(params, 10n * ev));
  const t0 = performance.now();
  for (const p of batch10) await recipient.receivePayment(p, ctx);
  const batch10Rate = TICKETS / ((performance.now() - t0) / 1000);

  if (recipient.stats.winningTickets !== 0)
    throw new Error('a ticket won; the figures include SQLite writes');
  await recipient.stop();
  store.close();

  const validatePerSecond = median(validateRates);
  const recoverPerSecond = median(recoverRates);
  const result = {
    'validate.ticketsPerSecond': Math.round(validatePerSecond),
    'baseline.recoverPerSecond': Math.round(recoverPerSecond),
    'validate.ratioToBaseline': Number((validatePerSecond / recoverPerSecond).toFixed(3)),
    'validate.batch10.ticketsPerSecond': Math.round(batch10Rate),
    'sign.ticketsPerSecond': Math.round(median(signRates)),
    tickets: TICKETS,
    rounds: ROUNDS,
    ...(await measureGas()),
  };
  await mkdir(join(root, 'bench', 'results'), { recursive: true });
  await writeFile(join(root, 'bench', 'results', 'pm.json'), `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error)?.stack ?? err}\n`);
  process.exit(1);
});
