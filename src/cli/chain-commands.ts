import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { formatEther } from 'viem';
import { AnvilError } from '../chain/anvil.js';
import { accountFromPrivateKey, connectChain, withSigner } from '../chain/client.js';
import { streamflowContracts } from '../chain/contracts.js';
import { type DeployParameters, deployStreamflow } from '../chain/deploy.js';
import { startDevnet } from '../chain/devnet.js';
import { ChainError } from '../chain/errors.js';
import { readManifest, writeManifest } from '../chain/manifest.js';
import { listOrchestrators } from '../chain/orchestrators.js';
import { RoundClock } from '../chain/round-clock.js';
import { redactUrl } from '../node/errors.js';
import { createLogger } from '../node/logger.js';
import { shutdownSignal, untilAborted } from './signals.js';

export function parseNonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a whole number ≥ 0');
  return n;
}

export function parseBigInt(value: string): bigint {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('expected a whole number');
  return BigInt(value);
}

function out(line = ''): void {
  process.stdout.write(`${line}\n`);
}

interface ReadOptions {
  rpc: string;
  manifest: string;
  json?: boolean;
}

/** A command that reads a deployment: `--rpc`, `--manifest`, `--json`. */
function readCommand(program: Command, name: string, description: string): Command {
  return program
    .command(name)
    .description(description)
    .requiredOption('--rpc <url>', 'JSON-RPC URL of the chain')
    .requiredOption('--manifest <file>', 'deployment manifest')
    .option('--json', 'print JSON');
}

async function openDeployment(opts: ReadOptions) {
  return { conn: await connectChain(opts.rpc), manifest: await readManifest(opts.manifest) };
}

export function registerChainCommands(program: Command): void {
  program
    .command('devnet')
    .description(
      'run a local chain (anvil) with every Streamflow contract deployed and funded accounts, until Ctrl-C',
    )
    .option('--block-time <seconds>', 'seconds between blocks', parseNonNegativeInt, 1)
    .option('--port <port>', '127.0.0.1 port for JSON-RPC (0 = a free one)', parseNonNegativeInt, 8545)
    .option('--accounts <n>', 'funded accounts', parseNonNegativeInt, 10)
    .option('--round-length <blocks>', 'blocks per round', parseBigInt, 20n)
    .option('--manifest <file>', 'also write the deployment manifest here')
    .option('--json', 'print one JSON object instead of text')
    .action(
      async (opts: {
        blockTime: number;
        port: number;
        accounts: number;
        roundLength: bigint;
        manifest?: string;
        json?: boolean;
      }) => {
        const logger = createLogger();
        const signal = shutdownSignal();
        const devnet = await startDevnet(
          {
            blockTime: opts.blockTime,
            port: opts.port,
            accounts: Math.max(1, opts.accounts),
            parameters: { roundLength: opts.roundLength },
          },
          { logger, signal },
        ).catch((err: unknown) => {
          if (err instanceof AnvilError && /address already in use/i.test(err.message)) {
            throw new AnvilError(
              'ANVIL_START_FAILED',
              `port ${opts.port} on 127.0.0.1 is already in use (another devnet or node?): stop it, or pass --port 0 for a free port`,
              err.details,
              { cause: err },
            );
          }
          throw err;
        });
        const clock = new RoundClock(
          { autoInitialize: true },
          {
            conn: devnet.signer(0),
            contracts: streamflowContracts(devnet.signer(0), devnet.manifest),
            logger,
          },
        );
        try {
          if (opts.manifest) await writeManifest(resolve(opts.manifest), devnet.manifest);
          if (opts.json) {
            out(
              JSON.stringify({
                rpcUrl: devnet.rpcUrl,
                chainId: devnet.chainId,
                manifest: devnet.manifest,
                accounts: devnet.accounts,
              }),
            );
          } else {
            out('Streamflow devnet is running (Ctrl-C stops it)');
            out(`  RPC URL   ${devnet.rpcUrl}`);
            out(`  chain id  ${devnet.chainId}`);
            out(
              `  round     ${devnet.manifest.parameters.roundLength} blocks, block time ${opts.blockTime} s`,
            );
            out('Contracts');
            for (const [name, address] of Object.entries(devnet.manifest.contracts))
              out(`  ${name.padEnd(16)} ${address}`);
            out('Funded accounts (10000 ETH and 10000 LPT each; public dev keys, never use them elsewhere)');
            for (const [i, a] of devnet.accounts.entries()) out(`  (${i}) ${a.address}  ${a.privateKey}`);
            if (opts.manifest) out(`Manifest written to ${resolve(opts.manifest)}`);
          }
          clock.start();
          await untilAborted(signal);
        } finally {
          await clock.stop();
          await devnet.stop();
          if (!opts.json) out('devnet stopped');
        }
      },
    );

  program
    .command('deploy')
    .description('deploy and wire every Streamflow contract on a JSON-RPC endpoint and write the manifest')
    .requiredOption('--rpc <url>', 'JSON-RPC URL of the chain')
    .requiredOption('--key-file <file>', 'file holding the deployer private key (hex)')
    .option('--out <file>', 'where to write the deployment manifest', 'streamflow-deployment.json')
    .option('--round-length <blocks>', 'blocks per round', parseBigInt)
    .option('--unbonding-period <rounds>', 'rounds before unbonded stake can be withdrawn', parseBigInt)
    .option('--minimum-stake <wei>', 'LPT wei needed to join the active set', parseBigInt)
    .option('--max-active <n>', 'bound on the active set size', parseBigInt)
    .addOption(new Option('--no-initialize-round', 'do not initialize the first round'))
    .action(
      async (opts: {
        rpc: string;
        keyFile: string;
        out: string;
        roundLength?: bigint;
        unbondingPeriod?: bigint;
        minimumStake?: bigint;
        maxActive?: bigint;
        initializeRound: boolean;
      }) => {
        const logger = createLogger();
        const signal = shutdownSignal();
        const account = accountFromPrivateKey(await readFile(opts.keyFile, 'utf8'));
        const conn = withSigner(await connectChain(opts.rpc), account);
        const parameters: Partial<DeployParameters> = {};
        if (opts.roundLength !== undefined) parameters.roundLength = opts.roundLength;
        if (opts.unbondingPeriod !== undefined) parameters.unbondingPeriod = opts.unbondingPeriod;
        if (opts.minimumStake !== undefined) parameters.minimumStake = opts.minimumStake;
        if (opts.maxActive !== undefined) parameters.maxActiveOrchestrators = opts.maxActive;
        const balance = await conn.publicClient.getBalance({ address: account.address });
        if (balance === 0n) {
          throw new ChainError(
            'NO_ACCOUNT',
            `the deployer ${account.address} has no ETH on ${redactUrl(opts.rpc)} to pay for gas`,
            {},
          );
        }
        const manifest = await deployStreamflow(
          conn,
          { parameters, initializeFirstRound: opts.initializeRound, signal },
          { logger },
        );
        const path = resolve(opts.out);
        await writeManifest(path, manifest);
        out(
          `deployed on chain ${manifest.chainId} by ${manifest.deployer} (balance was ${formatEther(balance)} ETH)`,
        );
        for (const [name, address] of Object.entries(manifest.contracts))
          out(`  ${name.padEnd(16)} ${address}`);
        out(`manifest: ${path}`);
      },
    );

  readCommand(
    program,
    'orchestrators',
    'list the orchestrator pool: active or not, stake, cuts, service URI, services and regions',
  ).action(async (opts: ReadOptions) => {
    const { conn, manifest } = await openDeployment(opts);
    const list = await listOrchestrators(conn, manifest);
    if (opts.json) {
      out(JSON.stringify(list, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2));
      return;
    }
    if (list.length === 0) out('no orchestrators in the pool');
    for (const o of list) {
      const pct = (ppm: bigint) => `${Number(ppm) / 10_000}%`;
      out(
        `${o.address}  ${o.active ? 'active  ' : 'inactive'}  ${formatEther(o.totalStake)} LPT  ` +
          `rewardCut ${pct(o.rewardCut)}  feeShare ${pct(o.feeShare)}` +
          (o.pendingCuts
            ? ` (from round ${o.pendingCuts.fromRound}: ${pct(o.pendingCuts.rewardCut)} / ${pct(o.pendingCuts.feeShare)})`
            : ''),
      );
      out(
        `    ${o.serviceUri || '(no service URI)'}  services: ${o.services.join(', ') || '-'}  ` +
          `regions: ${o.regions.join(', ') || '-'}  last reward: round ${o.lastRewardRound}`,
      );
    }
  });

  readCommand(program, 'round', 'show the current round of a deployment').action(
    async (opts: ReadOptions) => {
      const { conn, manifest } = await openDeployment(opts);
      const clock = new RoundClock({}, { conn, contracts: streamflowContracts(conn, manifest) });
      const s = await clock.read();
      if (opts.json) {
        out(JSON.stringify(s, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)));
      } else {
        out(
          `round ${s.round} (${s.initialized ? 'initialized' : 'not initialized'}${s.locked ? ', locked' : ''}): block ${s.blockNumber}, ${s.blocksLeft} of ${s.roundLength} blocks left`,
        );
      }
    },
  );
}
