import { createServer } from 'node:net';
import { pino } from 'pino';
import type { Address } from 'viem';
import { afterAll, describe, expect, it } from 'vitest';
import type { OrchestratorCandidate } from '../../src/broadcaster/discovery.js';
import { JobManager } from '../../src/broadcaster/jobs.js';
import type { SegmentTranscoder } from '../../src/media/transcode.js';
import { Sender } from '../../src/pm/sender.js';
import { uintToBytes } from '../../src/rpc/convert.js';
import { WireError } from '../../src/rpc/errors.js';
import {
  type Cheat,
  FACE_VALUE,
  hexBytes,
  resignInfo,
  startOrchestrator,
  type TestOrchestrator,
  testAccount,
  testKey,
} from './fixtures/verify-orchestrator.js';

// D10: a broadcaster whose every candidate is filtered out must say so at warn level, with the count per reason
// (price, ticket EV, stake, unreachable, refused), not leave the operator with "0 orchestrators" and per-node
// lines at info level. Five real orchestrator servers on loopback (the real JobService, signed replies), each
// failing one filter.

const broadcaster = testAccount('broadcaster');
/** Never asked to transcode: negotiation only. */
const transcoder: SegmentTranscoder = {
  transcode: async () => {
    throw new Error('not used');
  },
} as unknown as SegmentTranscoder;

const servers: TestOrchestrator[] = [];
afterAll(async () => {
  for (const s of servers) await s.server.close();
});

/** A port nothing listens on: bound, then released. */
async function deadPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', () => resolve()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

function candidate(node: TestOrchestrator, stake: bigint | undefined): OrchestratorCandidate {
  return {
    address: node.account.address,
    serviceUri: node.server.url,
    stake,
    services: [],
    regions: [],
    source: stake === undefined ? 'static' : 'chain',
  };
}

describe('a broadcaster that filters out every orchestrator', () => {
  it('logs one warn line with the count per reason', async () => {
    const lines: { level: number; msg: string; [key: string]: unknown }[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(JSON.parse(line)) });

    const start = async (name: string, o: { pricePerPixel: bigint; cheat?: Cheat }) => {
      const node = await startOrchestrator({ account: testAccount(name), transcoder, ...o });
      servers.push(node);
      return node;
    };
    // Above the broadcaster's max price of 10 wei/pixel.
    const expensive = await start('expensive', { pricePerPixel: 1_000n });
    // Ticket EV of FACE_VALUE / 2 = 5e14 wei at 1 wei/pixel: above the floor (1e14) and two reference segments.
    const greedy = await start('greedy', {
      pricePerPixel: 1n,
      cheat: {
        info: async (info) =>
          resignInfo(
            {
              ...info,
              ticketParams: info.ticketParams && { ...info.ticketParams, winProb: uintToBytes(1n << 255n) },
            },
            broadcaster.address,
            testAccount('greedy'),
          ),
      },
    });
    // Found on chain with less stake than the floor.
    const poor = await start('poor', { pricePerPixel: 1n });
    // Answers, but refuses this broadcaster.
    const refusing = await start('refusing', {
      pricePerPixel: 1n,
      cheat: {
        info: async () => {
          throw new WireError('LowPMBalance', 'fund the reserve', {
            orchestrator: testAccount('refusing').address,
          });
        },
      },
    });
    const candidates: OrchestratorCandidate[] = [
      candidate(expensive, undefined),
      candidate(greedy, undefined),
      candidate(poor, 10n),
      candidate(refusing, undefined),
      {
        address: testAccount('gone').address as Address,
        serviceUri: `http://127.0.0.1:${await deadPort()}`,
        stake: undefined,
        services: [],
        regions: [],
        source: 'static',
      },
    ];
    const sender = new Sender(
      {
        privateKey: hexBytes(testKey('broadcaster')),
        domain: { chainId: 31_337, verifyingContract: '0x00000000000000000000000000000000000000b0' },
      },
      { funds: { deposit: () => 100n * FACE_VALUE } },
    );
    const jobs = new JobManager(
      { selection: { maxPricePerPixel: 10, minStake: 1_000n }, refreshMs: 600_000, infoTimeoutMs: 10_000 },
      { sender, signer: broadcaster, discover: async () => candidates, logger },
    );
    try {
      await jobs.start();
      expect(jobs.ranked()).toEqual([]);
      const warn = lines.filter((l) => l.level === 40 && /no usable orchestrator/.test(l.msg));
      expect(warn, JSON.stringify(lines, null, 1)).toHaveLength(1);
      expect(warn[0]).toMatchObject({
        considered: 5,
        usable: 0,
        filtered: { price: 1, ticketEv: 1, stake: 1, unreachable: 1, refused: 1 },
        codes: { ExpectedValueTooHigh: 1, LowPMBalance: 1, Unavailable: 1 },
      });
      expect(warn[0]?.msg).toContain('all 5 filtered out');
      expect(warn[0]?.msg).toContain('ticket EV above the cap: 1');
    } finally {
      await jobs.stop();
    }
  }, 60_000);
});
