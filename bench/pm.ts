/**
 * Payment benchmark: ticket signing and full recipient validation on one core, against bare libsecp256k1
 * public-key recovery of the same signatures in the same run (the physical limit of validation). Prints one
 * flat JSON object and writes it to bench/results/pm.json. Gas figures come from the
 * TicketBroker on a fresh devnet (`measureGas`).
 *
 * `node dist/bench/pm.js [tickets]` (default 20_000 tickets per measurement).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import secp256k1 from 'secp256k1';
import { type Address, type Hex, hexToBytes, keccak256, parseEther, toHex } from 'viem';
import type { SignerConnection } from '../src/chain/client.js';
import { streamflowContracts } from '../src/chain/contracts.js';
import { startDevnet } from '../src/chain/devnet.js';
import { bondAndRegister, mineToNextRound } from '../src/chain/staking.js';
import { ticketDomain } from '../src/chain/ticket-broker.js';
import { waitForSuccess } from '../src/chain/tx.js';
import { TicketHasher } from '../src/pm/hasher.js';
import { Recipient } from '../src/pm/recipient.js';
import { Sender } from '../src/pm/sender.js';
import { PMStore } from '../src/pm/store.js';
import { signDigest, type TicketDomain, ticketHash } from '../src/pm/ticket.js';
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
  'gas.redeem.single.firstFeeOfRound': number | null;
  'gas.redeem.batch10.perTicket': number | null;
  'gas.redeem.reserveClaim': number | null;
}

/**
 * Receipt gasUsed on a fresh devnet (anvil, automine): a first `fundDepositAndReserve`; a single
 * `redeemWinningTicket` paid from the deposit; `batchRedeemWinningTickets` of 10 tickets ÷ 10; a redemption
 * whose deposit falls short so the reserve pays. The recipient is an active orchestrator that has called
 * `reward()` this round and the tickets are from the current round, the common case.
 */
async function measureGas(): Promise<GasFigures> {
  const devnet = await startDevnet({ accounts: 4, blockTime: 0, parameters: { roundLength: 1000n } });
  try {
    const o = devnet.signer(1);
    const done = (conn: SignerConnection, what: string) => (hash: Hex) => waitForSuccess(conn, hash, what);
    await bondAndRegister(o, devnet.manifest, {
      stake: parseEther('1000'),
      rewardCut: 100_000n,
      feeShare: 500_000n,
    });
    await mineToNextRound(o, devnet.manifest);
    const co = streamflowContracts(o, devnet.manifest);
    await co.bondingManager.write.reward().then(done(o, 'reward'));
    const round = await co.roundsManager.read.currentRound();
    const blockHash = await co.roundsManager.read.blockHashForRound([round]);
    const onChainDomain = ticketDomain(devnet.manifest);
    const recipientRand = 0x5eedn;
    const signed = (senderIndex: number, nonce: bigint, faceValue: bigint) => {
      const key = devnet.accounts[senderIndex]?.privateKey;
      if (!key) throw new Error('no key');
      const ticket = {
        recipient: o.account.address,
        sender: devnet.signer(senderIndex).account.address,
        faceValue,
        winProb: 2n ** 256n - 1n,
        senderNonce: nonce,
        recipientRandHash: keccak256(toHex(recipientRand, { size: 32 })),
        creationRound: round,
        creationRoundBlockHash: blockHash,
      };
      return { ticket, sig: signDigest(ticketHash(ticket, onChainDomain), hexToBytes(key)) };
    };
    const gasOf = async (hash: Hex) => Number((await waitForSuccess(o, hash, 'measure')).gasUsed);

    const b = devnet.signer(2);
    const cb = streamflowContracts(b, devnet.manifest);
    const fund = await gasOf(
      await cb.ticketBroker.write.fundDepositAndReserve([parseEther('10'), parseEther('1')], {
        value: parseEther('11'),
      }),
    );
    const face = parseEther('0.01');
    // The first fee of a round turns the orchestrator's fee slots from zero to non-zero (20,000 gas each);
    // every later ticket of the round finds them warm. `single` is the steady state, the first is reported too.
    const first = signed(2, 1n, face);
    const firstOfRound = await gasOf(
      await co.ticketBroker.write.redeemWinningTicket([first.ticket, first.sig, recipientRand]),
    );
    const one = signed(2, 100n, face);
    const single = await gasOf(
      await co.ticketBroker.write.redeemWinningTicket([one.ticket, one.sig, recipientRand]),
    );
    const ten = Array.from({ length: 10 }, (_, i) => signed(2, 2n + BigInt(i), face));
    const batch = await gasOf(
      await co.ticketBroker.write.batchRedeemWinningTickets([
        ten.map((t) => t.ticket),
        ten.map((t) => t.sig),
        ten.map(() => recipientRand),
      ]),
    );
    // A second broadcaster whose deposit cannot cover the face value: the reserve pays the rest.
    const b2 = devnet.signer(3);
    await streamflowContracts(b2, devnet.manifest)
      .ticketBroker.write.fundDepositAndReserve([parseEther('0.001'), parseEther('1')], {
        value: parseEther('1.001'),
      })
      .then(done(b2, 'fund b2'));
    const short = signed(3, 1n, face);
    const reserveClaim = await gasOf(
      await co.ticketBroker.write.redeemWinningTicket([short.ticket, short.sig, recipientRand]),
    );
    return {
      'gas.fundDepositAndReserve': fund,
      'gas.redeem.single': single,
      'gas.redeem.single.firstFeeOfRound': firstOfRound,
      'gas.redeem.batch10.perTicket': Math.round(batch / 10),
      'gas.redeem.reserveClaim': reserveClaim,
    };
  } finally {
    await devnet.stop();
  }
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
