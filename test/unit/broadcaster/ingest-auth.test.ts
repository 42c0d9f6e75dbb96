import { once } from 'node:events';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createStreamKey,
  hashStreamKey,
  IngestAuth,
  IngestError,
  isLoopback,
  isSafeStreamName,
  keyMatches,
  type PublishRequest,
} from '../../../src/broadcaster/ingest-auth.js';
import { rejection, tempDir } from '../media/fixtures.js';

const PROFILES = ['480p30', '360p30', '240p30'];
const req = (over: Partial<PublishRequest> = {}): PublishRequest => ({
  stream: 'cam1',
  key: undefined,
  remoteAddress: '127.0.0.1:50000',
  protocol: 'rtmp',
  ...over,
});

async function refusal(p: Promise<unknown>, code: string): Promise<IngestError> {
  const err = await rejection(p, IngestError);
  expect(err.code).toBe(code);
  return err;
}

describe('stream keys file', () => {
  const tmp = tempDir('keys');
  afterAll(() => tmp.remove());

  it('creates a 0600 file holding only the hash of a fresh 32-byte key, and prints the key once', async () => {
    const file = join(tmp.dir, 'new.json');
    const { key, replaced } = await createStreamKey(file, 'cam1');
    expect(replaced).toBe(false);
    expect(Buffer.from(key, 'base64url')).toHaveLength(32);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const text = readFileSync(file, 'utf8');
    expect(text).not.toContain(key);
    expect(JSON.parse(text).keys.cam1.sha256).toBe(hashStreamKey(key));
    expect(keyMatches(key, hashStreamKey(key))).toBe(true);
    expect(keyMatches(`${key}x`, hashStreamKey(key))).toBe(false);
    const other = await createStreamKey(file, 'cam2');
    expect(other.key).not.toBe(key);
  });

  it('refuses to overwrite a name silently; --replace makes a new key and the old one stops working', async () => {
    const file = join(tmp.dir, 'replace.json');
    const first = await createStreamKey(file, 'cam1');
    await refusal(createStreamKey(file, 'cam1'), 'StreamKeyExists');
    const auth = new IngestAuth({ profiles: PROFILES, streamKeysFile: file });
    expect((await auth.authorize(req({ key: first.key }))).via).toBe('key');
    const second = await createStreamKey(file, 'cam1', { replace: true });
    expect(second.replaced).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // The running authorizer sees the change without a restart.
    await refusal(auth.authorize(req({ key: first.key })), 'StreamKeyRefused');
    expect((await auth.authorize(req({ key: second.key }))).via).toBe('key');
  });

  it('refuses names that are not a safe path segment, "." and ".." first of all', async () => {
    for (const name of ['.', '..', '.hidden', 'a/b', '', 'a b', 'x'.repeat(65), '%2e%2e']) {
      expect(isSafeStreamName(name), name).toBe(false);
      await refusal(createStreamKey(join(tmp.dir, 'names.json'), name), 'InvalidStreamName');
    }
    for (const name of ['cam1', 'cam.1', 'a_b-c', 'x'.repeat(64)])
      expect(isSafeStreamName(name), name).toBe(true);
  });

  it('refuses a file that is not a stream-keys file at load', async () => {
    const file = join(tmp.dir, 'broken.json');
    writeFileSync(file, '{"version":1,"keys":{"cam1":{"sha256":"nothex"}}}');
    await refusal(
      new IngestAuth({ profiles: PROFILES, streamKeysFile: file }).load(),
      'StreamKeysFileInvalid',
    );
  });
});

describe('ingest authorization', () => {
  const tmp = tempDir('ingest-auth');
  let file: string;
  let key: string;
  let webhook: Server;
  let webhookUrl: string;
  const calls: Array<{ headers: IncomingMessage['headers']; body: Record<string, unknown> }> = [];
  /** What the webhook answers, by stream name. */
  const answers: Record<string, (res: ServerResponse) => void> = {};

  beforeAll(async () => {
    file = join(tmp.dir, 'keys.json');
    key = (await createStreamKey(file, 'cam1')).key;
    await createStreamKey(file, 'cam2');
    webhook = createServer((r, res) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown>;
        calls.push({ headers: r.headers, body });
        const answer = answers[String(body.stream)];
        if (answer) answer(res);
        else res.writeHead(403).end();
      });
    });
    webhook.listen(0, '127.0.0.1');
    await once(webhook, 'listening');
    webhookUrl = `http://127.0.0.1:${(webhook.address() as AddressInfo).port}/auth`;
  });
  afterAll(async () => {
    webhook.closeAllConnections();
    webhook.close();
    tmp.remove();
  });

  it('with neither keys nor a webhook, takes loopback publishers only', async () => {
    const auth = new IngestAuth({ profiles: PROFILES });
    expect(auth.mode).toBe('loopback');
    for (const remoteAddress of [
      '127.0.0.1:5',
      '127.8.9.1',
      '::1',
      '[::1]:1935',
      '::ffff:127.0.0.1',
      '[::ffff:127.0.0.1]:80',
      '0:0:0:0:0:0:0:1',
    ]) {
      expect((await auth.authorize(req({ remoteAddress }))).via, remoteAddress).toBe('loopback');
    }
    for (const remoteAddress of [
      '192.0.2.2:5000',
      '10.0.0.1',
      '::ffff:10.0.0.1',
      'fd00::2',
      '[fd00::1]:1935',
      '::1:5000',
      '',
      '?:0',
    ]) {
      await refusal(auth.authorize(req({ remoteAddress })), 'NotLoopback');
    }
    expect(isLoopback('128.0.0.1')).toBe(false);
  });

  it('with a keys file, takes a stream only with its own key, from anywhere', async () => {
    const auth = new IngestAuth({ profiles: PROFILES, streamKeysFile: file });
    await auth.load();
    expect(await auth.authorize(req({ key, remoteAddress: '192.0.2.7:4000' }))).toEqual({
      via: 'key',
      profiles: undefined,
    });
    await refusal(auth.authorize(req()), 'StreamKeyRequired');
    await refusal(auth.authorize(req({ key: '' })), 'StreamKeyRequired');
    await refusal(auth.authorize(req({ key: 'guess' })), 'StreamKeyRefused');
    // cam1's key does not publish cam2, nor a stream the file does not know.
    await refusal(auth.authorize(req({ stream: 'cam2', key })), 'StreamKeyRefused');
    await refusal(auth.authorize(req({ stream: 'cam3', key })), 'StreamKeyRefused');
    // A loopback publisher needs the key too once keys are configured.
    await refusal(auth.authorize(req({ remoteAddress: '127.0.0.1:1' })), 'StreamKeyRequired');
    await refusal(auth.authorize(req({ stream: '..', key })), 'InvalidStreamName');
  });

  it('asks the webhook with stream, key and remote address; 2xx accepts, its profiles narrow the stream', async () => {
    answers.open = (res) => res.writeHead(200).end();
    answers.narrow = (res) =>
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"profiles":["240p30","240p30"]}');
    answers.created = (res) => res.writeHead(204).end();
    const auth = new IngestAuth({ profiles: PROFILES, authWebhook: webhookUrl });
    expect(auth.mode).toBe('webhook');
    const grant = await auth.authorize(
      req({ stream: 'open', key: 'k1', remoteAddress: '192.0.2.9:1234', protocol: 'http' }),
    );
    expect(grant).toEqual({ via: 'webhook', profiles: undefined });
    expect(calls.at(-1)?.body).toEqual({
      stream: 'open',
      key: 'k1',
      remoteAddress: '192.0.2.9:1234',
      protocol: 'http',
    });
    expect(calls.at(-1)?.headers['content-type']).toBe('application/json');
    expect((await auth.authorize(req({ stream: 'narrow' }))).profiles).toEqual(['240p30']);
    expect((await auth.authorize(req({ stream: 'created' }))).profiles).toBeUndefined();
  });

  it('refuses on anything but a well-formed 2xx: other status, timeout, unreachable, malformed body', async () => {
    answers.forbidden = (res) => res.writeHead(403).end('{"profiles":["240p30"]}');
    answers.error = (res) => res.writeHead(500).end();
    answers.redirect = (res) => res.writeHead(302, { Location: `${webhookUrl}?again` }).end();
    answers.slow = () => undefined; // never answers
    answers.notJson = (res) => res.writeHead(200).end('yes');
    answers.array = (res) => res.writeHead(200).end('["240p30"]');
    answers.badProfiles = (res) => res.writeHead(200).end('{"profiles":"240p30"}');
    answers.emptyProfiles = (res) => res.writeHead(200).end('{"profiles":[]}');
    answers.unknownProfile = (res) => res.writeHead(200).end('{"profiles":["1080p60"]}');
    answers.huge = (res) => res.writeHead(200).end(`{"pad":"${'x'.repeat(100_000)}"}`);
    const auth = new IngestAuth({ profiles: PROFILES, authWebhook: webhookUrl, webhookTimeoutMs: 300 });
    for (const stream of [
      'forbidden',
      'error',
      'redirect',
      'slow',
      'notJson',
      'array',
      'badProfiles',
      'emptyProfiles',
      'unknownProfile',
      'huge',
    ]) {
      const err = await refusal(auth.authorize(req({ stream, key: 'k' })), 'WebhookRefused');
      expect(err.message, stream).toContain(stream);
    }
    const closed = createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as AddressInfo).port;
    closed.close();
    await once(closed, 'close');
    const unreachable = new IngestAuth({ profiles: PROFILES, authWebhook: `http://127.0.0.1:${port}/auth` });
    const err = await refusal(unreachable.authorize(req({ key: 'k' })), 'WebhookRefused');
    expect(err.message).toContain('unreachable');
  });

  it('with keys and a webhook, a known key needs no webhook call and an unknown one is asked', async () => {
    answers.cam2 = (res) => res.writeHead(200).end();
    const auth = new IngestAuth({ profiles: PROFILES, streamKeysFile: file, authWebhook: webhookUrl });
    const before = calls.length;
    expect((await auth.authorize(req({ key }))).via).toBe('key');
    expect(calls.length).toBe(before);
    expect((await auth.authorize(req({ stream: 'cam2', key: 'from-the-webhook' }))).via).toBe('webhook');
    expect(calls.length).toBe(before + 1);
    await refusal(auth.authorize(req({ key: 'wrong' })), 'WebhookRefused');
  });
});
