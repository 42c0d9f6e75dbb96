import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../node/logger.js';
import { SecretFileError } from './errors.js';

/**
 * Reads the recipient's 32-byte secret (64 hex characters) from `path`, creating it (mode 0600, fsynced) on
 * first start. The secret derives every recipientRand, so params issued and winning tickets accepted before a
 * restart stay valid after it. A file readable by others is narrowed back to 0600 with a warning.
 * @throws SecretFileError when the file exists but does not hold 64 hex characters
 */
export function loadOrCreateSecret(path: string, logger?: Logger): Uint8Array {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  let fd: number | undefined;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  if (fd !== undefined) {
    const secret = randomBytes(32);
    try {
      writeSync(fd, `${secret.toString('hex')}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    // The directory entry must be durable too, or a crash could leave params signed with a secret that
    // never reached the disk.
    const dirFd = openSync(dirname(path), 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
    logger?.info({ path }, 'created ticket secret');
    return new Uint8Array(secret);
  }
  const mode = statSync(path).mode & 0o777;
  if (mode & 0o077) {
    logger?.warn({ path, mode: mode.toString(8) }, 'ticket secret was readable by others; narrowed to 0600');
    chmodSync(path, 0o600);
  }
  const text = readFileSync(path, 'utf8').trim();
  if (!/^[0-9a-fA-F]{64}$/.test(text)) {
    throw new SecretFileError(
      'SecretFileInvalid',
      `The ticket secret ${path} does not hold 64 hex characters. Restore it from a backup; deleting it ` +
        'makes every outstanding ticket params unusable (winning tickets already stored are not affected).',
      { path },
    );
  }
  return new Uint8Array(Buffer.from(text, 'hex'));
}
