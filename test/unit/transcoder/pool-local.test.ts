import { readFileSync } from 'node:fs';
import { createClient } from '@connectrpc/connect';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveProfiles } from '../../../src/media/profiles.js';
import type { SegmentTranscoder, TranscodeResult } from '../../../src/media/transcode.js';
import { StreamflowError } from '../../../src/node/errors.js';
import { createPoolMetrics } from '../../../src/orchestrator/pool-metrics.js';
import { TranscoderPool } from '../../../src/orchestrator/transcoder-pool.js';
import { fromConnectError } from '../../../src/rpc/errors.js';
import { Transcoder } from '../../../src/rpc/gen/streamflow/v1/transcoder_pb.js';
import { createRpcServer } from '../../../src/rpc/server.js';
import { createRpcTransport } from '../../../src/rpc/transport.js';
import { makeSource, rejection, tempDir, tools } from '../media/fixtures.js';

const profiles = resolveProfiles('144p30');

describe('TranscoderPool with its local transcoder', () => {
  const tmp = tempDir('pool-local');
  let segment: Buffer;
  beforeAll(() => {
    segment = readFileSync(makeSource(tmp.dir, 'seg', { width: 160, height: 90, fps: 30, seconds: 1 }));
  });
  afterAll(() => tmp.remove());

  it('transcodes on the local ffmpeg', async () => {
    const pool = new TranscoderPool({ localCapacity: 1, local: { preset: 'ultrafast' } }, { tools });
    const r = await pool.transcode(segment, profiles);
    expect(r.transcoder).toBe('local');
    expect([r.renditions[0]?.width, r.renditions[0]?.height]).toEqual([256, 144]);
    expect(pool.memberInfo()).toEqual([{ id: 'local', kind: 'local', capacity: 1, load: 0 }]);
  });

  it('answers OrchestratorBusy past the local capacity and frees the slot on abort', async () => {
    let started!: () => void;
    const running = new Promise<void>((resolve) => {
      started = resolve;
    });
    const held: SegmentTranscoder = {
      transcode: (_s, _p, opts) =>
        new Promise<TranscodeResult>((_resolve, reject) => {
          started();
          opts?.signal?.addEventListener('abort', () => reject(opts.signal?.reason), { once: true });
        }),
    };
    const registry = new Registry();
    const pool = new TranscoderPool(
      { localCapacity: 1 },
      { local: held, metrics: createPoolMetrics(registry) },
    );
    const controller = new AbortController();
    const first = pool.transcode(segment, profiles, { signal: controller.signal });
    await running;
    expect((await rejection(pool.transcode(segment, profiles), StreamflowError)).code).toBe(
      'OrchestratorBusy',
    );
    controller.abort(new Error('caller gave up'));
    await expect(first).rejects.toThrow('caller gave up');
    expect(pool.freeCapacity()).toBe(1);
    const text = await registry.metrics();
    expect(text).toContain('streamflow_pool_busy_total 1');
    expect(text).toContain('streamflow_pool_dispatches_total{kind="local",outcome="aborted"} 1');
    expect(text).toContain('streamflow_pool_members{kind="local"} 1');
  });

  it('answers OrchestratorBusy with no member at all, and refuses remotes without a secret', async () => {
    const pool = new TranscoderPool({ localCapacity: 0 });
    expect((await rejection(pool.transcode(segment, profiles), StreamflowError)).code).toBe(
      'OrchestratorBusy',
    );

    const server = await createRpcServer({ port: 0 }, (router) => pool.registerRoutes(router));
    const controller = new AbortController();
    try {
      const client = createClient(Transcoder, createRpcTransport(server.url, { signal: controller.signal }));
      let code: string | undefined;
      try {
        for await (const _ of client.registerTranscoder({ secret: '', capacity: 1 })) break;
      } catch (err) {
        code = fromConnectError(err).code;
      }
      expect(code).toBe('Unauthenticated');
    } finally {
      controller.abort();
      await server.close();
    }
  });

  it('close() fails segments in flight with ShuttingDown and is idempotent', async () => {
    const held: SegmentTranscoder = {
      transcode: (_s, _p, opts) =>
        new Promise<TranscodeResult>((_resolve, reject) => {
          opts?.signal?.addEventListener('abort', () => reject(opts.signal?.reason), { once: true });
        }),
    };
    const pool = new TranscoderPool({ localCapacity: 1 }, { local: held });
    const pending = pool.transcode(segment, profiles);
    pool.close();
    pool.close();
    expect((await rejection(pending, StreamflowError)).code).toBe('ShuttingDown');
  });
});
