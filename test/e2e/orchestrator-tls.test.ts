import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseEther } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OrchestratorClient } from '../../src/broadcaster/client.js';
import { streamflowContracts } from '../../src/chain/contracts.js';
import { type Devnet, startDevnet } from '../../src/chain/devnet.js';
import { mineToNextRound } from '../../src/chain/staking.js';
import { waitForSuccess } from '../../src/chain/tx.js';
import { OrchestratorNode } from '../../src/orchestrator/node.js';
import { tools } from '../unit/media/fixtures.js';

// A public orchestrator serves over TLS with a certificate it made on first start and keeps: the broadcaster
// reaches it over https and trusts it through the address that signs its replies, not the certificate.
describe('an orchestrator over TLS', () => {
  let devnet: Devnet;
  let dir: string;
  const nodes: OrchestratorNode[] = [];

  beforeAll(async () => {
    devnet = await startDevnet({ accounts: 3, blockTime: 0, parameters: { roundLength: 100n } });
    dir = mkdtempSync(join(tmpdir(), 'sf-orch-tls-'));
    const b = devnet.signer(2);
    await waitForSuccess(
      b,
      await streamflowContracts(b, devnet.manifest).ticketBroker.write.fundDepositAndReserve(
        [parseEther('1'), parseEther('1')],
        { value: parseEther('2') },
      ),
      'fund',
    );
  });
  afterAll(async () => {
    for (const n of nodes) await n.stop();
    await devnet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const start = async () => {
    const node = new OrchestratorNode(
      {
        dataDir: join(dir, 'o'),
        tls: 'self-signed',
        pricePerPixel: 1_000n,
        registration: { bond: parseEther('1000'), rewardCut: 0n, feeShare: 500_000n },
        reward: false,
      },
      { conn: devnet.signer(1), manifest: devnet.manifest, tools },
    );
    nodes.push(node);
    await node.start();
    return node;
  };

  it('makes a certificate on first start, keeps it across restarts, and answers signed over https', async () => {
    const first = await start();
    expect(first.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    await mineToNextRound(devnet.signer(0), devnet.manifest);
    await first.syncChain();
    const account = privateKeyToAccount(devnet.accounts[2]?.privateKey as `0x${string}`);
    const client = new OrchestratorClient(first.url, first.address, { signer: account });
    try {
      const offer = await client.getInfo({ service: 'transcode/h264' }, { timeoutMs: 5_000 });
      expect(offer.address).toBe(first.address);
      expect(offer.serviceUri).toBe(first.url);
    } finally {
      client.close();
    }
    const cert = readFileSync(join(dir, 'o', 'tls', 'cert.pem'), 'utf8');
    await first.stop();

    const second = await start();
    expect(readFileSync(join(dir, 'o', 'tls', 'cert.pem'), 'utf8')).toBe(cert);
    expect(second.url).toMatch(/^https:/);
  });
});
