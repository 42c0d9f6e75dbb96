import { type Address, zeroAddress } from 'viem';
import { describe, expect, it } from 'vitest';
import { positionHint } from '../../../src/chain/hints.js';

const a = (n: number) => `0x${n.toString(16).padStart(40, '0')}` as Address;
const pool = [
  { address: a(1), stake: 500n },
  { address: a(2), stake: 300n },
  { address: a(3), stake: 100n },
];

describe('positionHint', () => {
  it('places a new highest stake at the head', () => {
    expect(positionHint(pool, a(9), 900n)).toEqual({ prev: zeroAddress, next: a(1) });
  });
  it('places a new lowest stake at the tail', () => {
    expect(positionHint(pool, a(9), 50n)).toEqual({ prev: a(3), next: zeroAddress });
  });
  it('places a middle stake between its neighbours and below equal stakes', () => {
    expect(positionHint(pool, a(9), 300n)).toEqual({ prev: a(2), next: a(3) });
    expect(positionHint(pool, a(9), 400n)).toEqual({ prev: a(1), next: a(2) });
  });
  it('ignores the node itself when it moves', () => {
    expect(positionHint(pool, a(3), 600n)).toEqual({ prev: zeroAddress, next: a(1) });
    expect(positionHint(pool, a(2), 310n)).toEqual({ prev: a(1), next: a(3) });
  });
  it('handles an empty pool', () => {
    expect(positionHint([], a(1), 1n)).toEqual({ prev: zeroAddress, next: zeroAddress });
  });
});
