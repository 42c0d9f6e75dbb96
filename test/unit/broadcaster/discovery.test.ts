import { type Address, keccak256, toHex, zeroAddress } from 'viem';
import { describe, expect, it } from 'vitest';
import {
  discoverOrchestrators,
  regionCode,
  serviceId,
  staticOrchestrators,
} from '../../../src/broadcaster/discovery.js';
import { DiscoveryError } from '../../../src/broadcaster/errors.js';
import type { ChainConnection } from '../../../src/chain/client.js';
import type { DeploymentManifest } from '../../../src/chain/manifest.js';

describe('discovery helpers', () => {
  it('hashes a service name the way orchestrators register it', () => {
    expect(serviceId('transcode/h264')).toBe(keccak256(toHex('transcode/h264')));
  });

  it('right-pads a region name to 32 bytes', () => {
    expect(regionCode('eu-west')).toBe(toHex('eu-west', { size: 32 }));
    expect(regionCode('x'.repeat(32))).toHaveLength(66);
  });

  it('rejects a region name over 32 bytes with a coded error', () => {
    const err = (() => {
      try {
        regionCode('é'.repeat(17)); // 34 bytes in UTF-8
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(DiscoveryError);
    expect((err as DiscoveryError).code).toBe('NameTooLong');
  });

  it('turns a static list into candidates without chain data, dropping duplicates', () => {
    const cs = staticOrchestrators([
      'https://o1.example:8935',
      ' https://o1.example:8935 ',
      'http://127.0.0.1:9000',
    ]);
    expect(cs.map((c) => c.serviceUri)).toEqual(['https://o1.example:8935/', 'http://127.0.0.1:9000/']);
    for (const c of cs) {
      expect(c).toMatchObject({
        address: undefined,
        stake: undefined,
        services: [],
        regions: [],
        source: 'static',
      });
    }
  });

  it('keeps credentials of a rejected static entry out of the error', () => {
    const err = (() => {
      try {
        staticOrchestrators(['ftp://user:hunter2@o1.example']);
      } catch (e) {
        return e as DiscoveryError;
      }
    })();
    expect(err?.code).toBe('InvalidOrchestratorUrl');
    expect(err?.message).not.toContain('hunter2');
    expect(JSON.stringify(err?.details)).not.toContain('hunter2');
  });

  it('rejects a static entry that is not an http(s) URL', () => {
    for (const bad of ['not a url', 'ftp://o1.example', '']) {
      expect(() => staticOrchestrators([bad]), bad).toThrow(
        expect.objectContaining({ code: 'InvalidOrchestratorUrl' }),
      );
    }
  });
});

/**
 * A public client that answers the discovery reads from memory, counting calls in flight, so the concurrency
 * bound and a 1000-orchestrator pool can be checked without bonding 1000 accounts on anvil.
 */
function fakeChain(n: number, delayMs: number) {
  const addr = (i: number) => `0x${(i + 1).toString(16).padStart(40, '0')}` as Address;
  const index = (a: Address) => Number.parseInt(a.slice(2), 16) - 1;
  const h264 = serviceId('transcode/h264');
  const eu = regionCode('eu-west');
  let inFlight = 0;
  let maxInFlight = 0;
  let calls = 0;
  const answer = (functionName: string, args: readonly unknown[]): unknown => {
    const i = args[0] === undefined ? -1 : index(args[0] as Address);
    switch (functionName) {
      case 'getOrchestratorPoolSize':
        return BigInt(n);
      case 'getFirstOrchestratorInPool':
        return addr(0);
      case 'getNextOrchestratorInPool':
        return i + 1 < n ? addr(i + 1) : zeroAddress;
      case 'isActiveOrchestrator':
        return true;
      case 'orchestratorTotalStake':
        return BigInt(n - i);
      case 'offersService':
        return i % 2 === 0;
      case 'servesRegion':
        return i % 3 === 0;
      case 'getServiceURI':
        return `https://o${i}.example`;
      case 'getServices':
        return [{ id: h264, verifier: zeroAddress }];
      case 'getRegions':
        return [eu];
      default:
        throw new Error(`unexpected read ${functionName}`);
    }
  };
  const publicClient = {
    readContract: async ({
      functionName,
      args = [],
    }: {
      functionName: string;
      args?: readonly unknown[];
    }) => {
      calls++;
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      try {
        if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
        return answer(functionName, args);
      } finally {
        inFlight--;
      }
    },
  };
  const conn = { rpcUrl: 'http://fake', chain: { id: 1 }, publicClient } as unknown as ChainConnection;
  const manifest = {
    contracts: { BondingManager: addr(100_000), ServiceRegistry: addr(100_001) },
  } as unknown as DeploymentManifest;
  return { conn, manifest, h264, eu, stats: () => ({ maxInFlight, calls }) };
}

describe('discovery over a large pool', () => {
  it('reads 1000 orchestrators with bounded concurrency and keeps only the matching ones, in pool order', async () => {
    const chain = fakeChain(1000, 1);
    const started = performance.now();
    const found = await discoverOrchestrators(
      { service: chain.h264, region: chain.eu, minStake: 500n },
      { conn: chain.conn, manifest: chain.manifest },
      { concurrency: 16 },
    );
    const elapsed = performance.now() - started;
    // Offers the service: even index; serves the region: multiple of 3; stake = 1000 − i ≥ 500: i ≤ 500.
    const expected = Array.from({ length: 501 }, (_, i) => i).filter((i) => i % 6 === 0);
    expect(found.map((c) => c.serviceUri)).toEqual(expected.map((i) => `https://o${i}.example`));
    // Four reads per orchestrator at once, so 16 workers put at most 64 reads in flight.
    expect(chain.stats().maxInFlight).toBeLessThanOrEqual(64);
    expect(chain.stats().maxInFlight).toBeGreaterThan(4);
    // The linked-list walk is sequential (≈1000 ms at 1 ms a read); the detail reads must overlap on top of it.
    expect(elapsed).toBeLessThan(10_000);
  });

  it('stops reading once the signal is aborted mid-way', async () => {
    const chain = fakeChain(200, 1);
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('shutting down')), 20);
    await expect(
      discoverOrchestrators(
        { service: chain.h264, minStake: 0n },
        { conn: chain.conn, manifest: chain.manifest, signal: ac.signal },
      ),
    ).rejects.toThrow('shutting down');
    const callsAtAbort = chain.stats().calls;
    await new Promise((r) => setTimeout(r, 50));
    expect(chain.stats().calls - callsAtAbort).toBeLessThanOrEqual(64);
  });
});
