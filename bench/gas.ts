/**
 * Gas benchmark of the staking contracts: a fresh anvil, N = 10, 100, 1000 registered orchestrators with
 * distinct stakes, and the receipt gasUsed of each operation. Prints one flat JSON object and writes it to
 * bench/results/gas.json.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type Address,
  createTestClient,
  encodeFunctionData,
  type Hex,
  http,
  keccak256,
  parseEther,
  toHex,
  zeroAddress,
} from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { startAnvil } from '../src/chain/anvil.js';
import { connectChain, type SignerConnection, withSigner } from '../src/chain/client.js';
import { streamflowContracts } from '../src/chain/contracts.js';
import { deployStreamflow } from '../src/chain/deploy.js';
import { devnetAccounts } from '../src/chain/devnet.js';
import { bondingManagerAbi, livepeerTokenAbi } from '../src/chain/generated/index.js';
import { type PoolEntry, positionHint } from '../src/chain/hints.js';
import { waitForSuccess } from '../src/chain/tx.js';

const LPT = 10n ** 18n;
const ROUND_LENGTH = 50n;
const here = dirname(fileURLToPath(import.meta.url));
const root = here.endsWith(join('dist', 'bench')) ? join(here, '../..') : join(here, '..');

function progress(msg: string) {
  process.stderr.write(`[bench:gas] ${msg}\n`);
}

async function main() {
  const anvil = await startAnvil({ blockTime: 0, accounts: 10 });
  try {
    const conn = await connectChain(anvil.rpcUrl, { pollingIntervalMs: 20 });
    const test = createTestClient({ mode: 'anvil', transport: http(anvil.rpcUrl) });
    const [deployerAcct, d1, d2, d3] = devnetAccounts(4);
    if (!deployerAcct || !d1 || !d2 || !d3) throw new Error('accounts');
    const deployer = withSigner(conn, privateKeyToAccount(deployerAcct.privateKey));
    const manifest = await deployStreamflow(deployer, {
      parameters: { roundLength: ROUND_LENGTH, maxActiveOrchestrators: 1000n, unbondingPeriod: 2n },
      genesis: [{ address: deployer.account.address, amount: 10_000_000n * LPT }],
    });
    const c = streamflowContracts(deployer, manifest);
    const bm = manifest.contracts.BondingManager;

    const signers = new Map<Address, SignerConnection>();
    const signer = (key: Hex) => {
      const s = withSigner(conn, privateKeyToAccount(key));
      signers.set(s.account.address, s);
      return s;
    };
    const gas = async (s: SignerConnection, what: string, to: Address, data: Hex): Promise<number> => {
      const hash = await s.walletClient.sendTransaction({ to, data });
      const r = await waitForSuccess(s, hash, what);
      return Number(r.gasUsed);
    };
    const callBm = (s: SignerConnection, what: string, functionName: string, args: readonly unknown[]) =>
      gas(s, what, bm, encodeFunctionData({ abi: bondingManagerAbi, functionName, args } as never));

    // The active set, highest stake first, mirrored locally so hints are exact.
    let pool: PoolEntry[] = [];
    const setStake = (address: Address, stake: bigint) => {
      pool = pool.filter((e) => e.address !== address);
      pool.push({ address, stake });
      pool.sort((a, b) => (a.stake === b.stake ? 0 : a.stake > b.stake ? -1 : 1));
    };
    const stakeOf = (a: Address) => pool.find((e) => e.address === a)?.stake ?? 0n;

    const nextRound = async () => {
      const [start, length, now] = await Promise.all([
        c.roundsManager.read.currentRoundStartBlock(),
        c.roundsManager.read.roundLength(),
        c.roundsManager.read.blockNum(),
      ]);
      await test.mine({ blocks: Math.max(1, Number(start + length - now)) });
      return gas(
        deployer,
        'initializeRound',
        manifest.contracts.RoundsManager,
        encodeFunctionData({ abi: c.roundsManager.abi, functionName: 'initializeRound' }),
      );
    };

    // Under automine every transaction is a block, so registering 1000 orchestrators spans many rounds: move
    // to a fresh round before one would land in the lock window or in an uninitialised round.
    const ensureRoundOpen = async () => {
      const [start, length, now, initialized] = await Promise.all([
        c.roundsManager.read.currentRoundStartBlock(),
        c.roundsManager.read.roundLength(),
        c.roundsManager.read.blockNum(),
        c.roundsManager.read.currentRoundInitialized(),
      ]);
      if (!initialized || start + length - now < length / 5n) await nextRound();
    };

    // Orchestrators in ascending stake (1000 + i LPT), so each new one is the new head of the list.
    const orchestrators: Address[] = [];
    const fund = async (n: number) => {
      const start = orchestrators.length;
      const batch: SignerConnection[] = [];
      let nonce = await conn.publicClient.getTransactionCount({ address: deployer.account.address });
      const pending: Hex[] = [];
      for (let i = start; i < n; i++) {
        const s = signer(keccak256(toHex(`streamflow-bench-orchestrator-${i}`)));
        batch.push(s);
        await test.setBalance({ address: s.account.address, value: parseEther('100') });
        pending.push(
          await deployer.walletClient.sendTransaction({
            to: manifest.contracts.LivepeerToken,
            data: encodeFunctionData({
              abi: livepeerTokenAbi,
              functionName: 'transfer',
              args: [s.account.address, 2000n * LPT],
            }),
            nonce: nonce++,
            gas: 100_000n,
          }),
        );
      }
      await Promise.all(pending.map((h) => waitForSuccess(deployer, h, 'fund')));
      for (const [k, s] of batch.entries()) {
        const i = start + k;
        const stake = 1000n * LPT + BigInt(i) * LPT;
        const a = s.account.address;
        await ensureRoundOpen();
        await gas(
          s,
          'approve',
          manifest.contracts.LivepeerToken,
          encodeFunctionData({ abi: livepeerTokenAbi, functionName: 'approve', args: [bm, 2000n * LPT] }),
        );
        await callBm(s, 'bond self', 'bond', [stake, a]);
        await callBm(s, 'register', 'registerOrchestrator', [100_000n, 500_000n]);
        setStake(a, stake);
        orchestrators.push(a);
      }
      progress(`${orchestrators.length} orchestrators registered`);
    };

    const newDelegator = async (key: Hex, amount: bigint) => {
      const s = signer(key);
      await test.setBalance({ address: s.account.address, value: parseEther('100') });
      await gas(
        deployer,
        'fund delegator',
        manifest.contracts.LivepeerToken,
        encodeFunctionData({
          abi: livepeerTokenAbi,
          functionName: 'transfer',
          args: [s.account.address, amount * 2n],
        }),
      );
      await gas(
        s,
        'approve',
        manifest.contracts.LivepeerToken,
        encodeFunctionData({ abi: livepeerTokenAbi, functionName: 'approve', args: [bm, amount * 2n] }),
      );
      return s;
    };
    const bondTo = async (s: SignerConnection, orchestrator: Address, amount: bigint, hinted: boolean) => {
      const newStake = stakeOf(orchestrator) + amount;
      const h = hinted
        ? positionHint(pool, orchestrator, newStake)
        : { prev: zeroAddress, next: zeroAddress };
      const used = await callBm(s, 'bond', 'bondWithHint', [
        amount,
        orchestrator,
        zeroAddress,
        zeroAddress,
        h.prev,
        h.next,
      ]);
      setStake(orchestrator, newStake);
      return used;
    };
    // A new delegator bonds to the lowest-staked orchestrator enough to move it to the middle of the set.
    const bondToLowest = async (key: Hex, hinted: boolean) => {
      const lowest = pool[pool.length - 1];
      const middle = pool[Math.floor(pool.length / 2)];
      if (!lowest || !middle) throw new Error('empty pool');
      const amount = middle.stake - lowest.stake + LPT / 2n;
      const s = await newDelegator(key, amount);
      return { used: await bondTo(s, lowest.address, amount, hinted), s, orchestrator: lowest.address };
    };

    const result: Record<string, number> = {};
    await fund(10);
    await nextRound();
    result['bond.n10.hinted'] = (await bondToLowest(keccak256(toHex('d-n10')), true)).used;
    await fund(100);
    await nextRound();
    result['bond.n100.hinted'] = (await bondToLowest(keccak256(toHex('d-n100')), true)).used;
    await fund(1000);
    await nextRound();
    const main = await bondToLowest(keccak256(toHex('d-n1000')), true);
    result['bond.n1000.hinted'] = main.used;
    result['bond.n1000.unhinted'] = (await bondToLowest(keccak256(toHex('d-n1000-unhinted')), false)).used;

    const o = main.orchestrator;
    const topUp = LPT / 4n;
    {
      const h = positionHint(pool, o, stakeOf(o) + topUp);
      result['bond.topUp.n1000.hinted'] = await callBm(main.s, 'top-up', 'bondWithHint', [
        topUp,
        o,
        zeroAddress,
        zeroAddress,
        h.prev,
        h.next,
      ]);
      setStake(o, stakeOf(o) + topUp);
    }

    // Two more delegators of one orchestrator: one claims after 1 round of rewards, the other after 100.
    const rewarder = o;
    const claim1 = await newDelegator(keccak256(toHex('d-claim-1')), 10n * LPT);
    await bondTo(claim1, rewarder, 10n * LPT, true);
    const claim100 = await newDelegator(keccak256(toHex('d-claim-100')), 10n * LPT);
    await bondTo(claim100, rewarder, 10n * LPT, true);
    const oSigner = signers.get(rewarder);
    if (!oSigner) throw new Error('no signer for orchestrator');
    const readStake = (a: Address) => c.bondingManager.read.orchestratorTotalStake([a]);
    const rewardWithHint = async () => {
      // Only this orchestrator rewards here, so it climbs the list; hint from the stake it will have.
      const [mintable, total] = await Promise.all([
        c.minter.read.currentMintableTokens(),
        c.bondingManager.read.currentRoundTotalActiveStake(),
      ]);
      const stake = await readStake(rewarder);
      const h = positionHint(pool, rewarder, stake + (mintable * stake) / total);
      const used = await callBm(oSigner, 'reward', 'rewardWithHint', [h.prev, h.next]);
      setStake(rewarder, await readStake(rewarder));
      return used;
    };
    // initializeRound and reward with 1000 in the set.
    result.initializeRound = await nextRound();
    result['reward.n1000'] = await rewardWithHint();
    result['claimEarnings.rounds1'] = await callBm(claim1, 'claim after 1 round', 'claimEarnings', []);
    progress('running 99 more rounds of reward()');
    for (let r = 0; r < 99; r++) {
      await nextRound();
      await rewardWithHint();
    }
    result['claimEarnings.rounds100'] = await callBm(claim100, 'claim after 100 rounds', 'claimEarnings', []);

    // Unbond and rebond of part of the main delegator's stake.
    {
      const part = LPT;
      const h = positionHint(pool, o, stakeOf(o) - part);
      result.unbond = await callBm(main.s, 'unbond', 'unbondWithHint', [part, h.prev, h.next]);
      setStake(o, stakeOf(o) - part);
      const h2 = positionHint(pool, o, stakeOf(o) + part);
      result.rebond = await callBm(main.s, 'rebond', 'rebondWithHint', [0n, h2.prev, h2.next]);
      setStake(o, stakeOf(o) + part);
    }

    // ServiceRegistry: a 40-character URI, two services, two regions.
    {
      const uri = 'https://orchestrator-0001.example.net:84';
      const svc = (id: string) => ({ id: keccak256(toHex(id)), verifier: zeroAddress });
      const region = (r: string) => toHex(r, { size: 32 });
      result['serviceRegistry.set'] = await gas(
        oSigner,
        'setAll',
        manifest.contracts.ServiceRegistry,
        encodeFunctionData({
          abi: c.serviceRegistry.abi,
          functionName: 'setAll',
          args: [uri, [svc('transcode/h264'), svc('transcode/hevc')], [region('eu-west'), region('us-east')]],
        }),
      );
    }

    // withdrawFees: the deployer stands in for the TicketBroker and credits fees to `rewarder`'s pool.
    {
      await callBm(deployer, 'setTicketBroker', 'setTicketBroker', [deployer.account.address]);
      const fees = parseEther('1');
      const round = await c.roundsManager.read.currentRound();
      await deployer.walletClient
        .sendTransaction({
          to: manifest.contracts.Minter,
          data: encodeFunctionData({ abi: c.minter.abi, functionName: 'depositETH' }),
          value: fees,
        })
        .then((h) => waitForSuccess(deployer, h, 'fund minter'));
      await callBm(deployer, 'credit fees', 'updateOrchestratorWithFees', [rewarder, fees, round]);
      await nextRound();
      await rewardWithHint();
      const pending = await c.bondingManager.read.pendingFees([claim100.account.address]);
      result.withdrawFees = await callBm(claim100, 'withdrawFees', 'withdrawFees', [
        claim100.account.address,
        pending,
      ]);
    }

    const ordered = Object.fromEntries(
      [
        'bond.n10.hinted',
        'bond.n100.hinted',
        'bond.n1000.hinted',
        'bond.n1000.unhinted',
        'bond.topUp.n1000.hinted',
        'reward.n1000',
        'initializeRound',
        'unbond',
        'rebond',
        'claimEarnings.rounds1',
        'claimEarnings.rounds100',
        'serviceRegistry.set',
        'withdrawFees',
      ].map((k) => [k, result[k]]),
    );
    const json = JSON.stringify(ordered, null, 2);
    await mkdir(join(root, 'bench/results'), { recursive: true });
    await writeFile(join(root, 'bench/results/gas.json'), `${json}\n`);
    process.stdout.write(`${json}\n`);
  } finally {
    await anvil.stop();
  }
}

await main();
