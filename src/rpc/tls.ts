import {
  createHash,
  createPrivateKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign,
  X509Certificate,
} from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { StreamflowError } from '../node/errors.js';
import { type Logger, silentLogger } from '../node/logger.js';

/**
 * Codes of {@link TlsError}:
 * - `TlsFileMissing`: a certificate or key file does not exist (or only one of the pair in the data dir);
 * - `TlsFileUnreadable`: it exists but cannot be read (permissions, a directory, ...);
 * - `TlsCertificateInvalid`: the certificate file is not a PEM X.509 certificate;
 * - `TlsKeyInvalid`: the key file is not an unencrypted PEM private key;
 * - `TlsKeyMismatch`: the key is not the certificate's;
 * - `TlsInvalidAltName`: a name asked for the certificate is neither an IP address nor a DNS name.
 */
export type TlsErrorCode =
  | 'TlsFileMissing'
  | 'TlsFileUnreadable'
  | 'TlsCertificateInvalid'
  | 'TlsKeyInvalid'
  | 'TlsKeyMismatch'
  | 'TlsInvalidAltName';

export interface TlsErrorDetails {
  /** The file concerned. */
  path?: string;
  certPath?: string;
  keyPath?: string;
  /** The underlying parser or file system message. */
  reason?: string;
  /** For `TlsInvalidAltName`. */
  name?: string;
}

/** Why a TLS certificate could not be loaded or made. Local to the node: these never cross the wire. */
export class TlsError extends StreamflowError<TlsErrorCode, TlsErrorDetails> {}

/** A certificate and its key, ready for `createRpcServer({ tls })`. */
export interface TlsCredentials {
  /** PEM; may hold a chain (the leaf first). */
  cert: string;
  /** PEM private key. */
  key: string;
  /** SHA-256 fingerprint of the leaf certificate, `AB:CD:…` (as `openssl x509 -fingerprint -sha256`). */
  fingerprint256: string;
}

/** Options of {@link loadOrCreateTlsCertificate}. */
export interface TlsCertificateOptions {
  /** Subject CN of a new certificate. @default the first DNS name of `altNames`, else 'localhost' */
  commonName?: string;
  /**
   * DNS names and IP addresses (v4 or v6) a new certificate is valid for; `127.0.0.1`, `::1` and `localhost`
   * are always added. @default []
   */
  altNames?: string[];
}

/** Validity of a certificate made on first start, days. */
export const TLS_CERTIFICATE_DAYS = 3650;

/**
 * The node's TLS certificate in `<dataDir>/tls/{cert,key}.pem`: loaded and checked when both files exist,
 * otherwise a self-signed one is made (ECDSA P-256, SAN = `altNames` + 127.0.0.1, ::1, localhost, valid
 * {@link TLS_CERTIFICATE_DAYS} days) and written atomically, the key with mode 0600. A broken or mismatched
 * pair, or only one of the two files, throws a {@link TlsError} and is never overwritten: delete both
 * files to have a new pair made. Names asked for but absent from an existing certificate are logged.
 *
 * Broadcasters do not check the certificate (they trust the orchestrator's signing address), so a
 * self-signed one serves; it only encrypts the link.
 */
export async function loadOrCreateTlsCertificate(
  dataDir: string,
  options: TlsCertificateOptions = {},
  deps: { logger?: Logger } = {},
): Promise<TlsCredentials & { created: boolean }> {
  const log = (deps.logger ?? silentLogger).child({ module: 'tls' });
  const dir = join(dataDir, 'tls');
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  const names = certificateNames(options.altNames ?? []);

  const [certExists, keyExists] = await Promise.all([exists(certPath), exists(keyPath)]);
  if (certExists || keyExists) {
    if (!certExists || !keyExists) {
      const [missing, present] = certExists ? [keyPath, certPath] : [certPath, keyPath];
      throw new TlsError(
        'TlsFileMissing',
        `TLS pair incomplete: ${present} exists but ${missing} does not. Restore ${missing}, or delete ${present} to have a new self-signed pair made.`,
        { path: missing, certPath, keyPath },
      );
    }
    const loaded = await loadTlsFiles(certPath, keyPath, deps);
    const x509 = new X509Certificate(loaded.cert);
    const uncovered = [...names.dns, ...names.ips].filter((n) =>
      isIP(n) === 0 ? x509.checkHost(n) === undefined : x509.checkIP(n) === undefined,
    );
    if (uncovered.length > 0) {
      log.warn(
        { certPath, uncovered },
        'tls certificate does not cover every name asked; delete the tls directory to have a new one made',
      );
    }
    await warnIfKeyReadableByOthers(keyPath, log);
    log.info({ certPath, fingerprint256: loaded.fingerprint256 }, 'tls certificate loaded');
    return { ...loaded, created: false };
  }

  const commonName = options.commonName ?? names.dns.find((n) => n !== 'localhost') ?? 'localhost';
  const made = makeSelfSignedCertificate({ commonName, dns: names.dns, ips: names.ips });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // The key first: cert.pem is what marks the pair complete, so a crash in between leaves a key without a
  // certificate, which is refused on the next start rather than silently replaced.
  await writeFileAtomic(keyPath, made.key, 0o600);
  await writeFileAtomic(certPath, made.cert, 0o644);
  await fsyncDir(dir);
  const fingerprint256 = new X509Certificate(made.cert).fingerprint256;
  log.info(
    { certPath, fingerprint256, altNames: [...names.dns, ...names.ips], days: TLS_CERTIFICATE_DAYS },
    'tls certificate created (self-signed)',
  );
  return { cert: made.cert, key: made.key, fingerprint256, created: true };
}

/**
 * A user-supplied certificate (PEM, optionally with its chain) and key (unencrypted PEM), checked: both
 * readable, parseable, and the key the certificate's. Throws a {@link TlsError} naming the file otherwise.
 * An expired or not yet valid certificate is logged, not refused (broadcasters do not check validity).
 */
export async function loadTlsFiles(
  certPath: string,
  keyPath: string,
  deps: { logger?: Logger } = {},
): Promise<TlsCredentials> {
  const [cert, key] = await Promise.all([readPem(certPath, 'certificate'), readPem(keyPath, 'key')]);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new TlsError(
      'TlsCertificateInvalid',
      `${certPath} is not a PEM X.509 certificate (${errorMessage(err)}); give a PEM file starting with -----BEGIN CERTIFICATE-----`,
      { path: certPath, reason: errorMessage(err) },
      { cause: err },
    );
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new TlsError(
      'TlsKeyInvalid',
      `${keyPath} is not an unencrypted PEM private key (${errorMessage(err)}); decrypt it or give the right file`,
      { path: keyPath, reason: errorMessage(err) },
      { cause: err },
    );
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new TlsError(
      'TlsKeyMismatch',
      `${keyPath} is not the private key of the certificate in ${certPath}; give the key the certificate was issued for`,
      { certPath, keyPath },
    );
  }
  const now = Date.now();
  if (now < Date.parse(x509.validFrom) || now > Date.parse(x509.validTo)) {
    (deps.logger ?? silentLogger)
      .child({ module: 'tls' })
      .warn(
        { certPath, validFrom: x509.validFrom, validTo: x509.validTo },
        'tls certificate is not valid now',
      );
  }
  return { cert, key, fingerprint256: x509.fingerprint256 };
}

async function readPem(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new TlsError('TlsFileMissing', `TLS ${what} file ${path} does not exist; check the path`, {
        path,
      });
    }
    throw new TlsError(
      'TlsFileUnreadable',
      `TLS ${what} file ${path} cannot be read (${errorMessage(err)}); check its permissions`,
      { path, reason: errorMessage(err) },
      { cause: err },
    );
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new TlsError(
      'TlsFileUnreadable',
      `${path} cannot be inspected (${errorMessage(err)}); check the permissions of the data directory`,
      { path, reason: errorMessage(err) },
      { cause: err },
    );
  }
}

async function warnIfKeyReadableByOthers(keyPath: string, log: Logger): Promise<void> {
  if (process.platform === 'win32') return;
  const { mode } = await stat(keyPath);
  if ((mode & 0o077) !== 0) {
    log.warn(
      { keyPath, mode: `0${(mode & 0o777).toString(8)}` },
      'tls key is readable by others; chmod 600 it',
    );
  }
}

/** Writes a sibling temporary file with `mode`, flushes it, then renames it over `path`. */
async function writeFileAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  // O_EXCL: never write through a file (or symlink) someone else placed at the temporary name.
  const handle = await open(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, mode);
  try {
    await handle.writeFile(data);
    // The umask may have narrowed `mode` at creation, never widened it; set it exactly.
    await handle.chmod(mode);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  // Persists the renames. Directories cannot be opened on Windows; there rename is durable enough.
  if (process.platform === 'win32') return;
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// --- names ----------------------------------------------------------------------------------------------

const DNS_NAME =
  /^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** Splits and checks the names asked, adding the loopback ones; DNS names lowercased, duplicates dropped. */
function certificateNames(altNames: readonly string[]): { dns: string[]; ips: string[] } {
  const dns = new Set<string>(['localhost']);
  const ips = new Map<string, string>([
    [ipBytes('127.0.0.1').join(','), '127.0.0.1'],
    [ipBytes('::1').join(','), '::1'],
  ]);
  for (const raw of altNames) {
    const name = raw.trim();
    // URL-style brackets around IPv6 are a common way to write it.
    const bare = name.startsWith('[') && name.endsWith(']') ? name.slice(1, -1) : name;
    if (isIP(bare) !== 0 && !bare.includes('%')) {
      const key = ipBytes(bare).join(',');
      if (!ips.has(key)) ips.set(key, bare);
    } else if (name.length <= 253 && DNS_NAME.test(name)) {
      dns.add(name.toLowerCase());
    } else {
      throw new TlsError(
        'TlsInvalidAltName',
        `"${raw}" is neither an IP address nor a DNS name, so it cannot go in a TLS certificate; give a host name like node.example.org or an address like 203.0.113.7`,
        { name: raw },
      );
    }
  }
  return { dns: [...dns], ips: [...ips.values()] };
}

/** An IPv4 (4 bytes) or IPv6 (16 bytes) address in network order; `ip` must pass `net.isIP`. */
function ipBytes(ip: string): number[] {
  if (isIP(ip) === 4) return ip.split('.').map(Number);
  let text = ip;
  const tail: number[] = [];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted?.[1]) {
    tail.push(...ipBytes(dotted[1]));
    text = text.slice(0, -dotted[1].length);
    // '::ffff:1.2.3.4' leaves '::ffff:', '1::1.2.3.4' leaves '1::'.
    if (text.endsWith(':') && !text.endsWith('::')) text = text.slice(0, -1);
  }
  const groups = (part: string | undefined) => (part ? part.split(':') : []);
  const [headText, tailText] = text.split('::');
  const head = groups(headText);
  const rest = groups(tailText);
  const missing = 8 - tail.length / 2 - head.length - rest.length;
  const all = tailText === undefined ? head : [...head, ...Array<string>(missing).fill('0'), ...rest];
  const bytes: number[] = [];
  for (const g of all) {
    const n = Number.parseInt(g, 16);
    bytes.push(n >> 8, n & 0xff);
  }
  return [...bytes, ...tail];
}

// --- DER ------------------------------------------------------------------------------------------------
// A minimal DER encoder, enough for one self-signed certificate (RFC 5280), so a fresh machine needs
// neither openssl nor a dependency. Node's own X.509 parser and TLS stack check the result (see the tests).

function der(tag: number, ...content: Uint8Array[]): Uint8Array {
  const body = Buffer.concat(content);
  const n = body.length;
  let length: number[];
  if (n < 0x80) length = [n];
  else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
    length = [0x80 | bytes.length, ...bytes];
  }
  return Buffer.concat([Uint8Array.of(tag, ...length), body]);
}

const seq = (...items: Uint8Array[]) => der(0x30, ...items);

function oid(dotted: string): Uint8Array {
  const [a = 0, b = 0, ...rest] = dotted.split('.').map(Number);
  const out = [40 * a + b];
  for (const arc of rest) {
    const chunk = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift(0x80 | (v & 0x7f));
    out.push(...chunk);
  }
  return der(0x06, Uint8Array.from(out));
}

/** A non-negative INTEGER from big-endian bytes. */
function uint(bytes: Uint8Array): Uint8Array {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const trimmed = bytes.subarray(i);
  return der(0x02, (trimmed[0] ?? 0) & 0x80 ? Uint8Array.of(0, ...trimmed) : trimmed);
}

/** UTCTime through 2049, GeneralizedTime after, as RFC 5280 §4.1.2.5 requires; whole seconds, UTC. */
function time(date: Date): Uint8Array {
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  const year = date.getUTCFullYear();
  return year < 2050
    ? der(0x17, Buffer.from(digits.slice(2), 'ascii'))
    : der(0x18, Buffer.from(digits, 'ascii'));
}

const distinguishedName = (cn: string) =>
  seq(der(0x31, seq(oid('2.5.4.3'), der(0x0c, Buffer.from(cn, 'utf8')))));

function extension(id: string, critical: boolean, value: Uint8Array): Uint8Array {
  return critical
    ? seq(oid(id), der(0x01, Uint8Array.of(0xff)), der(0x04, value))
    : seq(oid(id), der(0x04, value));
}

const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';

/** A self-signed ECDSA P-256 server certificate (PEM) and its PKCS#8 key (PEM). */
function makeSelfSignedCertificate(subject: { commonName: string; dns: string[]; ips: string[] }): {
  cert: string;
  key: string;
} {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  // The subjectPublicKey BIT STRING is the last 65 bytes of a P-256 SPKI (uncompressed point).
  const keyId = createHash('sha1')
    .update(spki.subarray(spki.length - 65))
    .digest();
  const serial = randomBytes(16);
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x01;
  // An hour back, so a peer whose clock is a little behind does not see a certificate from the future.
  const notBefore = new Date(Math.floor(Date.now() / 1000) * 1000 - 3_600_000);
  const notAfter = new Date(notBefore.getTime() + 3_600_000 + TLS_CERTIFICATE_DAYS * 86_400_000);
  const altNames = seq(
    ...subject.dns.map((d) => der(0x82, Buffer.from(d, 'ascii'))),
    ...subject.ips.map((ip) => der(0x87, Uint8Array.from(ipBytes(ip)))),
  );
  const tbs = seq(
    der(0xa0, der(0x02, Uint8Array.of(2))), // v3
    uint(serial),
    seq(oid(ECDSA_WITH_SHA256)),
    distinguishedName(subject.commonName),
    seq(time(notBefore), time(notAfter)),
    distinguishedName(subject.commonName),
    spki,
    der(
      0xa3,
      seq(
        extension('2.5.29.19', true, seq()), // basicConstraints: not a CA
        extension('2.5.29.15', true, der(0x03, Uint8Array.of(7, 0x80))), // keyUsage: digitalSignature
        extension('2.5.29.37', false, seq(oid('1.3.6.1.5.5.7.3.1'))), // extKeyUsage: serverAuth
        extension('2.5.29.17', false, altNames), // subjectAltName
        extension('2.5.29.14', false, der(0x04, keyId)), // subjectKeyIdentifier
      ),
    ),
  );
  const signature = sign('sha256', tbs, privateKey); // DER ECDSA-Sig-Value
  const cert = seq(tbs, seq(oid(ECDSA_WITH_SHA256)), der(0x03, Uint8Array.of(0), signature));
  const base64 = Buffer.from(cert).toString('base64').replace(/.{64}/g, '$&\n').trimEnd();
  return {
    cert: `-----BEGIN CERTIFICATE-----\n${base64}\n-----END CERTIFICATE-----\n`,
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}
