import { type Address, zeroAddress } from 'viem';

export interface PoolEntry {
  readonly address: Address;
  readonly stake: bigint;
}

export interface PositionHint {
  /** The member that will sit just above the node (zero address: the node becomes the head). */
  readonly prev: Address;
  /** The member that will sit just below the node (zero address: the node becomes the tail). */
  readonly next: Address;
}

/**
 * Where `node` belongs once its stake becomes `newStake`, given the active set in order (highest stake first).
 * The contract checks the hint and walks from the node's position when it is stale, so a hint computed from a
 * slightly old view still gives the right result, only at a higher gas cost. A node ties below equal stakes.
 */
export function positionHint(pool: readonly PoolEntry[], node: Address, newStake: bigint): PositionHint {
  const others = pool.filter((e) => e.address.toLowerCase() !== node.toLowerCase());
  let prev: Address = zeroAddress;
  for (const e of others) {
    if (e.stake >= newStake) prev = e.address;
    else return { prev, next: e.address };
  }
  return { prev, next: zeroAddress };
}
