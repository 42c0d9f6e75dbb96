import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SecretFileError } from '../../../src/pm/errors.js';
import { loadOrCreateSecret } from '../../../src/pm/secret.js';
import { tempDir } from './helpers.js';

const dirs: (() => void)[] = [];
afterEach(() => {
  for (const c of dirs.splice(0)) c();
});

describe('loadOrCreateSecret', () => {
  it('creates a 0600 file on first start and returns the same secret afterwards', () => {
    const { dir, cleanup } = tempDir();
    dirs.push(cleanup);
    const path = join(dir, 'nested', 'pm.secret');
    const a = loadOrCreateSecret(path);
    expect(a).toHaveLength(32);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readFileSync(path, 'utf8').trim()).toMatch(/^[0-9a-f]{64}$/);
    expect(loadOrCreateSecret(path)).toEqual(a);
  });

  it('narrows a file readable by others back to 0600', () => {
    const { dir, cleanup } = tempDir();
    dirs.push(cleanup);
    const path = join(dir, 'pm.secret');
    const a = loadOrCreateSecret(path);
    chmodSync(path, 0o644);
    expect(loadOrCreateSecret(path)).toEqual(a);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('refuses a corrupt file instead of replacing it', () => {
    const { dir, cleanup } = tempDir();
    dirs.push(cleanup);
    const path = join(dir, 'pm.secret');
    writeFileSync(path, 'not hex', { mode: 0o600 });
    expect(() => loadOrCreateSecret(path)).toThrow(SecretFileError);
    expect(readFileSync(path, 'utf8')).toBe('not hex');
  });
});
