import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AnvilInstance, startAnvil } from '../../src/chain/anvil.js';
import { connectChain } from '../../src/chain/client.js';
import { streamflowContracts } from '../../src/chain/contracts.js';
import { devnetAccounts } from '../../src/chain/devnet.js';
import { readManifest } from '../../src/chain/manifest.js';

const BIN = join(import.meta.dirname, '../../bin/streamflow.js');

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, STREAMFLOW_LOG_LEVEL: 'warn' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    if (!child.stdout) return reject(new Error('no stdout'));
    const rl = createInterface({ input: child.stdout });
    rl.once('line', (line) => {
      rl.close();
      resolve(line);
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code} before printing`)));
  });
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
}

describe('streamflow devnet', () => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`serves a deployed chain and leaves no anvil behind on ${signal}`, async () => {
      const child = spawn(process.execPath, [BIN, 'devnet', '--port', '0', '--accounts', '2', '--json'], {
        env: { ...process.env, STREAMFLOW_LOG_LEVEL: 'warn' },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const info = JSON.parse(await firstLine(child)) as {
        rpcUrl: string;
        chainId: number;
        accounts: Array<{ address: string }>;
        manifest: unknown;
      };
      expect(info.accounts).toHaveLength(2);
      const conn = await connectChain(info.rpcUrl);
      expect(conn.chain.id).toBe(info.chainId);
      const anvilPort = new URL(info.rpcUrl).port;
      child.kill(signal);
      expect(await exited(child)).toBe(0);
      await expect(connectChain(`http://127.0.0.1:${anvilPort}`)).rejects.toMatchObject({
        code: 'CHAIN_UNREACHABLE',
      });
    });
  }
  it('says which port is taken when the devnet port is in use', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const res = await run(['devnet', '--port', String(port)]);
      expect(res.code).toBe(1);
      expect(res.stderr).toContain(`port ${port} on 127.0.0.1 is already in use`);
    } finally {
      server.close();
    }
  });
});

describe('streamflow deploy', () => {
  let anvil: AnvilInstance;
  let dir: string;

  beforeAll(async () => {
    anvil = await startAnvil({ blockTime: 0, accounts: 2 });
    dir = await mkdtemp(join(tmpdir(), 'sf-deploy-'));
  });
  afterAll(async () => {
    await anvil?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('deploys to any RPC endpoint and writes a manifest other commands can use', async () => {
    const keyFile = join(dir, 'key');
    await writeFile(keyFile, `${devnetAccounts(1)[0]?.privateKey}\n`);
    const out = join(dir, 'manifest.json');
    const res = await run([
      'deploy',
      '--rpc',
      anvil.rpcUrl,
      '--key-file',
      keyFile,
      '--out',
      out,
      '--round-length',
      '30',
    ]);
    expect(res.stderr).not.toContain('error');
    expect(res.code).toBe(0);
    const manifest = await readManifest(out);
    expect(manifest.parameters.roundLength).toBe('30');
    const conn = await connectChain(anvil.rpcUrl);
    const c = streamflowContracts(conn, manifest);
    expect(await c.roundsManager.read.roundLength()).toBe(30n);
    expect(await c.roundsManager.read.currentRoundInitialized()).toBe(true);

    const round = await run(['round', '--rpc', anvil.rpcUrl, '--manifest', out, '--json']);
    expect(round.code).toBe(0);
    expect(JSON.parse(round.stdout)).toMatchObject({ roundLength: '30', initialized: true });
  });

  it('refuses a key file that holds no private key, saying so', async () => {
    const keyFile = join(dir, 'bad-key');
    await writeFile(keyFile, 'not a key');
    const res = await run(['deploy', '--rpc', anvil.rpcUrl, '--key-file', keyFile]);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('KEY_INVALID');
  });

  it('names an unreachable RPC endpoint without leaking its credentials', async () => {
    const keyFile = join(dir, 'key2');
    await writeFile(keyFile, devnetAccounts(1)[0]?.privateKey ?? '');
    const res = await run(['deploy', '--rpc', 'http://user:hunter2@127.0.0.1:1', '--key-file', keyFile]);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('CHAIN_UNREACHABLE');
    expect(res.stderr).not.toContain('hunter2');
  });

  it('rejects a manifest that is not one', async () => {
    const bad = join(dir, 'bad.json');
    await writeFile(bad, JSON.stringify({ version: 1, chainId: 'x' }));
    await expect(readManifest(bad)).rejects.toMatchObject({ code: 'MANIFEST_INVALID' });
    expect(JSON.parse(await readFile(bad, 'utf8')).version).toBe(1);
  });
});
