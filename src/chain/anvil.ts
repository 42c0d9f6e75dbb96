import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { StreamflowError } from '../node/errors.js';
import type { Logger } from '../node/logger.js';

export type AnvilErrorCode = 'ANVIL_NOT_FOUND' | 'ANVIL_START_FAILED' | 'ANVIL_EXITED';
export class AnvilError extends StreamflowError<
  AnvilErrorCode,
  { stderr?: string; exitCode?: number | null }
> {}

export interface AnvilOptions {
  /** Seconds between blocks. 0 mines a block per transaction only. @default 1 */
  blockTime?: number;
  /**
   * With `mixed` (the default) transactions are mined at once and a block is still produced every
   * `blockTime` seconds, so the round clock ticks while transactions confirm without waiting a block time.
   * `interval` only mines on the timer, like a real chain.
   */
  mining?: 'mixed' | 'interval';
  /** 127.0.0.1 port; 0 picks a free one. @default 0 */
  port?: number;
  chainId?: number;
  /** Dev accounts anvil funds with ETH from its default mnemonic. @default 10 */
  accounts?: number;
  /** ETH per dev account. @default 10000 */
  balanceEth?: number;
  /** Path to an anvil binary; defaults to the one shipped in `@foundry-rs/anvil`. */
  binary?: string;
  /** @default 20_000 */
  startTimeoutMs?: number;
}

export interface AnvilInstance {
  readonly rpcUrl: string;
  readonly port: number;
  readonly pid: number;
  /** Stops anvil and waits for its exit; idempotent. */
  stop(): Promise<void>;
}

const require = createRequire(import.meta.url);

/** The anvil binary shipped in the platform package of `@foundry-rs/anvil`, made executable. */
export function anvilBinaryPath(): string {
  const fromEnv = process.env.STREAMFLOW_ANVIL;
  if (fromEnv) return fromEnv;
  const platform = process.platform === 'win32' ? 'win32' : process.platform;
  const arch = process.arch === 'x64' ? 'amd64' : process.arch;
  const pkg = `@foundry-rs/anvil-${platform}-${arch}`;
  let path: string;
  try {
    path = join(dirname(require.resolve(`${pkg}/package.json`)), 'bin', 'anvil');
  } catch (cause) {
    throw new AnvilError(
      'ANVIL_NOT_FOUND',
      `anvil is not installed for ${process.platform}/${process.arch} (${pkg}); run npm ci, or set STREAMFLOW_ANVIL to an anvil binary`,
      {},
      { cause },
    );
  }
  if (!existsSync(path)) {
    throw new AnvilError('ANVIL_NOT_FOUND', `anvil binary missing at ${path}; run npm ci`, {});
  }
  // npm runs no install scripts here, so the package's own chmod step never ran.
  chmodSync(path, 0o755);
  return path;
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Kills every anvil this process started when it exits, so none is orphaned by Ctrl-C or a crash. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
}

/** Starts anvil on 127.0.0.1 and resolves once it accepts JSON-RPC. */
export async function startAnvil(
  options: AnvilOptions = {},
  deps: { logger?: Logger; signal?: AbortSignal } = {},
): Promise<AnvilInstance> {
  const blockTime = options.blockTime ?? 1;
  const args = [
    '--host',
    '127.0.0.1',
    '--port',
    String(options.port ?? 0),
    '--accounts',
    String(options.accounts ?? 10),
    '--balance',
    String(options.balanceEth ?? 10_000),
    // anvil otherwise spills old states to ~/.foundry/anvil/tmp (GBs per long run, removed only on a clean
    // exit); nothing here reads state older than a few hundred blocks, so keep those in memory and none on disk.
    '--prune-history',
    '512',
  ];
  if (blockTime > 0) {
    args.push('--block-time', String(blockTime));
    if ((options.mining ?? 'mixed') === 'mixed') args.push('--mixed-mining');
  }
  if (options.chainId !== undefined) args.push('--chain-id', String(options.chainId));

  const child = spawn(options.binary ?? anvilBinaryPath(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  installExitHook();
  const log = deps.logger?.child({ module: 'anvil' });

  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => {
    stderr = (stderr + d).slice(-4000);
  });

  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      running.delete(child);
      resolve(code);
    });
  });

  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timeout = setTimeout(
      () => fail(new AnvilError('ANVIL_START_FAILED', 'anvil did not start listening in time', { stderr })),
      options.startTimeoutMs ?? 20_000,
    );
    const onAbort = () => fail(deps.signal?.reason);
    deps.signal?.addEventListener('abort', onAbort, { once: true });
    const onData = (d: Buffer) => {
      out += d.toString('utf8');
      const m = /Listening on [\d.]+:(\d+)/.exec(out);
      if (m?.[1]) {
        cleanup();
        resolve(Number(m[1]));
      } else if (out.length > 100_000) {
        out = out.slice(-1000);
      }
    };
    const onExit = (code: number | null) =>
      fail(
        new AnvilError('ANVIL_EXITED', `anvil exited during start (code ${code}): ${stderr.trim()}`, {
          stderr,
          exitCode: code,
        }),
      );
    function cleanup() {
      clearTimeout(timeout);
      deps.signal?.removeEventListener('abort', onAbort);
      child.stdout?.off('data', onData);
      child.off('exit', onExit);
    }
    function fail(err: unknown) {
      cleanup();
      child.kill('SIGKILL');
      reject(err);
    }
    child.stdout?.on('data', onData);
    child.once('exit', onExit);
    child.once('error', (err) =>
      fail(
        new AnvilError('ANVIL_START_FAILED', `cannot run anvil: ${err.message}`, { stderr }, { cause: err }),
      ),
    );
  });
  // Block logs keep coming; drain them so the pipe never fills and stalls anvil.
  child.stdout?.resume();

  const rpcUrl = `http://127.0.0.1:${port}`;
  log?.info({ rpcUrl, pid: child.pid, blockTime }, 'anvil started');
  let stopping: Promise<void> | undefined;
  return {
    rpcUrl,
    port,
    pid: child.pid ?? -1,
    stop() {
      stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
          await exited;
          clearTimeout(timer);
        }
        log?.info({ pid: child.pid }, 'anvil stopped');
      })();
      return stopping;
    },
  };
}
