import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../../../src/transcoder/transcoder.js';

describe('backoffDelay', () => {
  const opts = { initialMs: 100, maxMs: 5_000 };

  it('doubles per failure and stays in the upper half of the step (equal jitter)', () => {
    for (let failures = 1; failures <= 6; failures++) {
      const step = Math.min(opts.maxMs, 100 * 2 ** (failures - 1));
      expect(
        backoffDelay(failures, opts, () => 0),
        `failures=${failures}, low`,
      ).toBe(step / 2);
      expect(
        backoffDelay(failures, opts, () => 0.999_999),
        `failures=${failures}, high`,
      ).toBe(step);
    }
  });

  it('is capped at maxMs however many failures', () => {
    for (const failures of [7, 20, 1_000, Number.MAX_SAFE_INTEGER]) {
      expect(
        backoffDelay(failures, opts, () => 0.999_999),
        `failures=${failures}`,
      ).toBeLessThanOrEqual(5_000);
    }
  });
});
