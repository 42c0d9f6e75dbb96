import { create } from '@bufbuild/protobuf';
import { type ConnectRouter, createClient } from '@connectrpc/connect';
import { afterEach, describe, expect, it } from 'vitest';
import { StreamflowError } from '../../../src/node/errors.js';
import {
  fromConnectError,
  fromWireErrorMessage,
  toWireErrorMessage,
  WireError,
} from '../../../src/rpc/errors.js';
import {
  Orchestrator,
  OrchestratorInfoSchema,
  TranscodeReplySchema,
} from '../../../src/rpc/gen/streamflow/v1/orchestrator_pb.js';
import { Transcoder, WorkItemSchema } from '../../../src/rpc/gen/streamflow/v1/transcoder_pb.js';
import { createRpcServer, type RpcServer } from '../../../src/rpc/server.js';
import { createRpcTransport } from '../../../src/rpc/transport.js';

const KiB = 1024;

const servers: RpcServer[] = [];
const controllers: AbortController[] = [];
afterEach(async () => {
  for (const c of controllers.splice(0)) c.abort();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function serve(
  routes: (router: ConnectRouter) => void,
  maxMessageBytes = 64 * KiB,
): Promise<RpcServer> {
  const server = await createRpcServer({ host: '127.0.0.1', port: 0, maxMessageBytes }, routes);
  servers.push(server);
  return server;
}

function transport(url: string, options: { maxMessageBytes?: number; protocol?: 'grpc' | 'connect' } = {}) {
  const controller = new AbortController();
  controllers.push(controller);
  return createRpcTransport(url, { maxMessageBytes: 64 * KiB, ...options, signal: controller.signal });
}

/** Echoes the request into the reply, so the test sees both directions of the wire. */
const echoOrchestrator = (router: ConnectRouter) =>
  router.service(Orchestrator, {
    getOrchestratorInfo: (req) =>
      create(OrchestratorInfoSchema, {
        address: req.broadcaster,
        challenge: req.challenge,
        services: [req.serviceId],
        regions: [req.region],
        capacityLeft: 3,
      }),
    transcode: () => {
      throw new StreamflowError('LowPMBalance', 'sender balance too low for this segment', { balance: 5n });
    },
  });

async function expectWireError(promise: Promise<unknown>): Promise<WireError> {
  try {
    await promise;
  } catch (err) {
    return fromConnectError(err);
  }
  throw new Error('expected the call to fail');
}

describe('rpc server and transport on loopback', () => {
  for (const protocol of ['grpc', 'connect'] as const) {
    it(`answers GetOrchestratorInfo over a real socket (${protocol})`, async () => {
      const server = await serve(echoOrchestrator);
      expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
      expect(server.port).toBeGreaterThan(0);
      const client = createClient(Orchestrator, transport(server.url, { protocol }));
      const broadcaster = new Uint8Array(20).fill(0xab);
      const challenge = new Uint8Array(32).fill(7);
      const info = await client.getOrchestratorInfo({
        broadcaster,
        challenge,
        serviceId: 'h264',
        region: 'eu',
      });
      expect(info.address).toEqual(broadcaster);
      expect(info.challenge).toEqual(challenge);
      expect(info.services).toEqual(['h264']);
      expect(info.regions).toEqual(['eu']);
      expect(info.capacityLeft).toBe(3);
    });
  }

  it('refuses a request over the server limit with MessageTooLarge', async () => {
    const server = await serve(echoOrchestrator, 4 * KiB);
    const client = createClient(Orchestrator, transport(server.url, { maxMessageBytes: 64 * KiB }));
    const err = await expectWireError(client.getOrchestratorInfo({ challenge: new Uint8Array(8 * KiB) }));
    expect(err.code).toBe('MessageTooLarge');
    expect(err.message).toMatch(/too large/);
    // The server is still healthy for a small request.
    await expect(client.getOrchestratorInfo({ challenge: new Uint8Array(32) })).resolves.toBeDefined();
  });

  it('refuses to send a request over the client limit with MessageTooLarge', async () => {
    const server = await serve(echoOrchestrator, 64 * KiB);
    const client = createClient(Orchestrator, transport(server.url, { maxMessageBytes: 4 * KiB }));
    const err = await expectWireError(client.getOrchestratorInfo({ challenge: new Uint8Array(8 * KiB) }));
    expect(err.code).toBe('MessageTooLarge');
  });

  for (const protocol of ['grpc', 'connect'] as const) {
    it(`keeps a thrown error's code and details across the wire (${protocol})`, async () => {
      const server = await serve(echoOrchestrator);
      const client = createClient(Orchestrator, transport(server.url, { protocol }));
      const err = await expectWireError(client.transcode({ segment: new Uint8Array(16) }));
      expect(err).toBeInstanceOf(WireError);
      expect(err.code).toBe('LowPMBalance');
      expect(err.details).toEqual({ balance: '5' });
      expect(err.message).toBe('sender balance too low for this segment');
    });
  }

  it('hides the message of a non-Streamflow error behind Internal', async () => {
    const server = await serve((router) =>
      router.service(Orchestrator, {
        getOrchestratorInfo: () => {
          throw new Error('ENOENT /home/op/secret.key');
        },
        transcode: () => create(TranscodeReplySchema),
      }),
    );
    const client = createClient(Orchestrator, transport(server.url));
    const err = await expectWireError(client.getOrchestratorInfo({}));
    expect(err.code).toBe('Internal');
    expect(err.message).not.toMatch(/secret/);
  });

  it('carries a coded refusal in TranscodeReply.error', async () => {
    const server = await serve((router) =>
      router.service(Orchestrator, {
        getOrchestratorInfo: () => create(OrchestratorInfoSchema),
        transcode: () =>
          create(TranscodeReplySchema, {
            result: {
              case: 'error',
              value: toWireErrorMessage(
                new WireError('OrchestratorBusy', 'no capacity left', { capacity: '0' }),
              ),
            },
          }),
      }),
    );
    const client = createClient(Orchestrator, transport(server.url));
    const reply = await client.transcode({});
    expect(reply.result.case).toBe('error');
    if (reply.result.case !== 'error') return;
    const err = fromWireErrorMessage(reply.result.value);
    expect(err.code).toBe('OrchestratorBusy');
    expect(err.details).toEqual({ capacity: '0' });
  });

  it('delivers server-stream items and ends the stream with ShuttingDown when the server closes', async () => {
    const server = await serve((router) =>
      router.service(Transcoder, {
        async *registerTranscoder(req, context) {
          for (let i = 0; i < req.capacity; i++) {
            yield create(WorkItemSchema, { taskId: `task-${i}`, segment: new Uint8Array([i]) });
          }
          // A real pool waits for work until the server shuts down.
          await new Promise<void>((resolve) => context.signal.addEventListener('abort', () => resolve()));
        },
        submitResult: () => ({}),
      }),
    );
    const client = createClient(Transcoder, transport(server.url));
    const received: string[] = [];
    let closed: Promise<void> | undefined;
    const err = await expectWireError(
      (async () => {
        for await (const item of client.registerTranscoder({ secret: 's', capacity: 3 })) {
          received.push(item.taskId);
          if (received.length === 3) closed = server.close();
        }
      })(),
    );
    expect(received).toEqual(['task-0', 'task-1', 'task-2']);
    expect(err.code).toBe('ShuttingDown');
    await closed;
    // Idempotent: a second close resolves too.
    await server.close();
  });

  it('keeps a coded error thrown mid-stream', async () => {
    const server = await serve((router) =>
      router.service(Transcoder, {
        async *registerTranscoder(req) {
          yield create(WorkItemSchema, { taskId: 'first' });
          if (req.secret !== 'right') throw new WireError('Unauthenticated', 'wrong shared secret');
        },
        submitResult: () => ({}),
      }),
    );
    const client = createClient(Transcoder, transport(server.url));
    const received: string[] = [];
    const err = await expectWireError(
      (async () => {
        for await (const item of client.registerTranscoder({ secret: 'wrong', capacity: 1 })) {
          received.push(item.taskId);
        }
      })(),
    );
    expect(received).toEqual(['first']);
    expect(err.code).toBe('Unauthenticated');
  });

  it('fails new calls with Canceled once the transport signal is aborted', async () => {
    const server = await serve(echoOrchestrator);
    const controller = new AbortController();
    const client = createClient(Orchestrator, createRpcTransport(server.url, { signal: controller.signal }));
    await client.getOrchestratorInfo({});
    controller.abort();
    const err = await expectWireError(client.getOrchestratorInfo({}));
    expect(err.code).toBe('Canceled');
  });

  it('ends a stream in flight with Canceled when the transport signal is aborted', async () => {
    const server = await serve((router) =>
      router.service(Transcoder, {
        async *registerTranscoder(_req, context) {
          yield create(WorkItemSchema, { taskId: 'only' });
          await new Promise<void>((resolve) => context.signal.addEventListener('abort', () => resolve()));
        },
        submitResult: () => ({}),
      }),
    );
    const controller = new AbortController();
    const client = createClient(Transcoder, createRpcTransport(server.url, { signal: controller.signal }));
    const received: string[] = [];
    const err = await expectWireError(
      (async () => {
        for await (const item of client.registerTranscoder({ secret: 's', capacity: 1 })) {
          received.push(item.taskId);
          controller.abort();
        }
      })(),
    );
    expect(received).toEqual(['only']);
    expect(err.code).toBe('Canceled');
  });
});
