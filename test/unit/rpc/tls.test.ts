import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { createClient } from '@connectrpc/connect';
import { describe, expect, it } from 'vitest';
import { fromConnectError } from '../../../src/rpc/errors.js';
import { Orchestrator, OrchestratorInfoSchema } from '../../../src/rpc/gen/streamflow/v1/orchestrator_pb.js';
import { createRpcServer } from '../../../src/rpc/server.js';
import { createRpcTransport } from '../../../src/rpc/transport.js';

function selfSigned(): { cert: Buffer; key: Buffer } | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'streamflow-tls-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
      ].concat(['-subj', '/CN=127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')]),
      { stdio: 'ignore' },
    );
    return { cert: readFileSync(join(dir, 'cert.pem')), key: readFileSync(join(dir, 'key.pem')) };
  } catch {
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const pair = selfSigned();

describe('rpc over TLS', () => {
  it.skipIf(!pair)('serves HTTP/2 over TLS with a self-signed certificate', async () => {
    if (!pair) return;
    const server = await createRpcServer({ port: 0, tls: pair }, (router) =>
      router.service(Orchestrator, {
        getOrchestratorInfo: (req) => create(OrchestratorInfoSchema, { serviceUri: req.region }),
        transcode: () => ({}),
      }),
    );
    const controller = new AbortController();
    try {
      expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      // Identity comes from the signing address, so the default accepts the self-signed certificate ...
      const client = createClient(
        Orchestrator,
        createRpcTransport(server.url, { signal: controller.signal }),
      );
      expect((await client.getOrchestratorInfo({ region: 'eu' })).serviceUri).toBe('eu');
      // ... and a node that asks for CA verification refuses it.
      const strict = createClient(
        Orchestrator,
        createRpcTransport(server.url, { signal: controller.signal, tls: { rejectUnauthorized: true } }),
      );
      const err = await strict.getOrchestratorInfo({}).then(
        () => undefined,
        (e: unknown) => fromConnectError(e),
      );
      expect(err?.code).toBe('RpcFailed');
      expect(err?.message).toMatch(/certificate/i);
    } finally {
      controller.abort();
      await server.close();
    }
  });
});
