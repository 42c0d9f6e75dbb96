import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { createClient } from '@connectrpc/connect';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { fromConnectError } from '../../../src/rpc/errors.js';
import { Orchestrator, OrchestratorInfoSchema } from '../../../src/rpc/gen/streamflow/v1/orchestrator_pb.js';
import { createRpcServer } from '../../../src/rpc/server.js';
import {
  loadOrCreateTlsCertificate,
  loadTlsFiles,
  TLS_CERTIFICATE_DAYS,
  TlsError,
} from '../../../src/rpc/tls.js';
import { createRpcTransport } from '../../../src/rpc/transport.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'streamflow-tls-'));
  dirs.push(dir);
  return dir;
}

/** A pino logger whose lines the test reads back. */
function memoryLogger() {
  const lines: { level: number; msg: string; [key: string]: unknown }[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { logger, lines };
}

async function tlsError(promise: Promise<unknown>): Promise<TlsError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(TlsError);
    return err as TlsError;
  }
  throw new Error('expected a TlsError');
}

const hasOpenssl = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe('loadOrCreateTlsCertificate', () => {
  it('creates a self-signed P-256 certificate on first start and reuses it after', async () => {
    const dataDir = tempDir();
    const { logger, lines } = memoryLogger();
    const first = await loadOrCreateTlsCertificate(
      dataDir,
      { altNames: ['node.example.org', '203.0.113.7', '[2001:db8::1]'] },
      { logger },
    );
    expect(first.created).toBe(true);
    expect(lines.find((l) => l.msg.includes('created'))?.fingerprint256).toBe(first.fingerprint256);

    const x509 = new X509Certificate(first.cert);
    expect(x509.fingerprint256).toBe(first.fingerprint256);
    expect(x509.verify(x509.publicKey)).toBe(true);
    expect(x509.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(x509.subject).toBe('CN=node.example.org');
    expect(x509.ca).toBe(false);
    for (const host of ['localhost', 'node.example.org']) expect(x509.checkHost(host), host).toBe(host);
    for (const ip of ['127.0.0.1', '::1', '203.0.113.7', '2001:db8::1'])
      expect(x509.checkIP(ip), ip).toBe(ip);
    expect(x509.checkHost('other.example.org')).toBeUndefined();
    const days = (Date.parse(x509.validTo) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(TLS_CERTIFICATE_DAYS - 1);
    expect(days).toBeLessThan(TLS_CERTIFICATE_DAYS + 1);
    expect(Date.parse(x509.validFrom)).toBeLessThan(Date.now());

    const second = await loadOrCreateTlsCertificate(dataDir, {}, { logger });
    expect(second).toEqual({ ...first, created: false });
    expect(lines.find((l) => l.msg.includes('loaded'))?.fingerprint256).toBe(first.fingerprint256);
  });

  it.skipIf(process.platform === 'win32')(
    'writes the key with mode 0600 and leaves no temporary file',
    async () => {
      const dataDir = tempDir();
      await loadOrCreateTlsCertificate(dataDir);
      expect(statSync(join(dataDir, 'tls', 'key.pem')).mode & 0o777).toBe(0o600);
      expect(statSync(join(dataDir, 'tls')).mode & 0o077).toBe(0);
      expect(readdirSync(join(dataDir, 'tls')).sort()).toEqual(['cert.pem', 'key.pem']);
    },
  );

  it('defaults the common name to localhost and makes a different key in every data dir', async () => {
    const a = await loadOrCreateTlsCertificate(tempDir());
    const b = await loadOrCreateTlsCertificate(tempDir(), { commonName: 'orchestrator-1' });
    expect(new X509Certificate(a.cert).subject).toBe('CN=localhost');
    expect(new X509Certificate(b.cert).subject).toBe('CN=orchestrator-1');
    expect(a.fingerprint256).not.toBe(b.fingerprint256);
    expect(a.key).not.toBe(b.key);
  });

  it('refuses a corrupt certificate or key with a coded error and leaves both files untouched', async () => {
    for (const [file, code] of [
      ['cert.pem', 'TlsCertificateInvalid'],
      ['key.pem', 'TlsKeyInvalid'],
    ] as const) {
      const dataDir = tempDir();
      await loadOrCreateTlsCertificate(dataDir);
      const path = join(dataDir, 'tls', file);
      writeFileSync(path, '-----BEGIN GARBAGE-----\nnot base64\n');
      const err = await tlsError(loadOrCreateTlsCertificate(dataDir));
      expect(err.code, file).toBe(code);
      expect(err.details.path, file).toBe(path);
      expect(err.message, file).toContain(path);
      expect(readFileSync(path, 'utf8'), file).toBe('-----BEGIN GARBAGE-----\nnot base64\n');
    }
  });

  it('refuses a key that is not the certificate’s', async () => {
    const dataDir = tempDir();
    const mine = await loadOrCreateTlsCertificate(dataDir);
    const theirs = await loadOrCreateTlsCertificate(tempDir());
    writeFileSync(join(dataDir, 'tls', 'key.pem'), theirs.key);
    const err = await tlsError(loadOrCreateTlsCertificate(dataDir));
    expect(err.code).toBe('TlsKeyMismatch');
    expect(readFileSync(join(dataDir, 'tls', 'cert.pem'), 'utf8')).toBe(mine.cert);
  });

  it('refuses half a pair rather than replacing it', async () => {
    for (const [kept, gone] of [
      ['key.pem', 'cert.pem'],
      ['cert.pem', 'key.pem'],
    ] as const) {
      const dataDir = tempDir();
      const made = await loadOrCreateTlsCertificate(dataDir);
      rmSync(join(dataDir, 'tls', gone));
      const err = await tlsError(loadOrCreateTlsCertificate(dataDir));
      expect(err.code, `only ${kept}`).toBe('TlsFileMissing');
      expect(err.details.path, `only ${kept}`).toBe(join(dataDir, 'tls', gone));
      const keptText = readFileSync(join(dataDir, 'tls', kept), 'utf8');
      expect(keptText, `only ${kept}`).toBe(kept === 'key.pem' ? made.key : made.cert);
    }
  });

  it('warns when an existing certificate does not cover a name asked for now', async () => {
    const dataDir = tempDir();
    await loadOrCreateTlsCertificate(dataDir, { altNames: ['a.example.org'] });
    const { logger, lines } = memoryLogger();
    await loadOrCreateTlsCertificate(dataDir, { altNames: ['a.example.org', 'b.example.org'] }, { logger });
    expect(lines.find((l) => l.level === 40)?.uncovered).toEqual(['b.example.org']);
  });

  it('refuses a name that is neither an IP address nor a DNS name', async () => {
    for (const name of ['https://node.example.org', 'two words', 'a..b', '-lead.example.org', '']) {
      const dataDir = tempDir();
      const err = await tlsError(loadOrCreateTlsCertificate(dataDir, { altNames: [name] }));
      expect(err.code, name).toBe('TlsInvalidAltName');
      expect(err.details.name, name).toBe(name);
    }
  });

  it.skipIf(!hasOpenssl)('makes a certificate openssl parses and verifies', async () => {
    const dataDir = tempDir();
    await loadOrCreateTlsCertificate(dataDir, { altNames: ['node.example.org'] });
    const certPath = join(dataDir, 'tls', 'cert.pem');
    const text = execFileSync('openssl', ['x509', '-in', certPath, '-noout', '-text']).toString();
    expect(text).toMatch(/ecdsa-with-SHA256/);
    expect(text).toMatch(/DNS:node\.example\.org/);
    expect(execFileSync('openssl', ['verify', '-CAfile', certPath, certPath]).toString()).toMatch(/OK/);
  });
});

describe('loadTlsFiles', () => {
  it('loads a user-supplied pair', async () => {
    const made = await loadOrCreateTlsCertificate(tempDir());
    const dir = tempDir();
    writeFileSync(join(dir, 'fullchain.pem'), made.cert);
    writeFileSync(join(dir, 'privkey.pem'), made.key);
    expect(await loadTlsFiles(join(dir, 'fullchain.pem'), join(dir, 'privkey.pem'))).toEqual({
      cert: made.cert,
      key: made.key,
      fingerprint256: made.fingerprint256,
    });
  });

  it('says which file is missing, unreadable or mismatched', async () => {
    const a = await loadOrCreateTlsCertificate(tempDir());
    const b = await loadOrCreateTlsCertificate(tempDir());
    const dir = tempDir();
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    const other = join(dir, 'other.pem');
    writeFileSync(cert, a.cert);
    writeFileSync(key, a.key);
    writeFileSync(other, b.key);
    mkdirSync(join(dir, 'a-directory'));

    const missing = await tlsError(loadTlsFiles(join(dir, 'nope.pem'), key));
    expect(missing.code).toBe('TlsFileMissing');
    expect(missing.details.path).toBe(join(dir, 'nope.pem'));

    const unreadable = await tlsError(loadTlsFiles(cert, join(dir, 'a-directory')));
    expect(unreadable.code).toBe('TlsFileUnreadable');
    expect(unreadable.details.path).toBe(join(dir, 'a-directory'));

    const swapped = await tlsError(loadTlsFiles(key, cert));
    expect(swapped.code).toBe('TlsCertificateInvalid');

    const mismatched = await tlsError(loadTlsFiles(cert, other));
    expect(mismatched.code).toBe('TlsKeyMismatch');
    expect(mismatched.details).toEqual({ certPath: cert, keyPath: other });
  });

  it('says a path that exists but cannot be read as a file is unreadable', async () => {
    const made = await loadOrCreateTlsCertificate(tempDir());
    const dir = tempDir();
    writeFileSync(join(dir, 'cert.pem'), made.cert);
    // A directory where the key should be: unreadable as a file for every user, root included (root ignores
    // file modes, so a chmod 000 file would not do).
    mkdirSync(join(dir, 'key.pem'));
    const err = await tlsError(loadTlsFiles(join(dir, 'cert.pem'), join(dir, 'key.pem')));
    expect(err.code).toBe('TlsFileUnreadable');
  });

  it.skipIf(process.platform === 'win32' || process.getuid?.() === 0)(
    'says a file without read permission is unreadable',
    async () => {
      const made = await loadOrCreateTlsCertificate(tempDir());
      const dir = tempDir();
      writeFileSync(join(dir, 'cert.pem'), made.cert);
      writeFileSync(join(dir, 'key.pem'), made.key);
      chmodSync(join(dir, 'key.pem'), 0);
      const err = await tlsError(loadTlsFiles(join(dir, 'cert.pem'), join(dir, 'key.pem')));
      expect(err.code).toBe('TlsFileUnreadable');
    },
  );
});

describe('rpc over TLS', () => {
  it('serves HTTP/2 over TLS with the certificate made on first start', async () => {
    const tls = await loadOrCreateTlsCertificate(tempDir());
    const server = await createRpcServer({ port: 0, tls }, (router) =>
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
      // ... a node that asks for CA verification refuses it ...
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
      // ... and one that pins it accepts it: valid for 127.0.0.1 by node's own checks (SAN, usage, dates).
      const pinned = createClient(
        Orchestrator,
        createRpcTransport(server.url, {
          signal: controller.signal,
          tls: { ca: tls.cert, rejectUnauthorized: true },
        }),
      );
      expect((await pinned.getOrchestratorInfo({ region: 'us' })).serviceUri).toBe('us');
    } finally {
      controller.abort();
      await server.close();
    }
  });
});
