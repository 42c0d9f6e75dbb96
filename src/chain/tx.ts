import { type Abi, BaseError, ContractFunctionRevertedError, type Hash, type TransactionReceipt } from 'viem';
import type { SignerConnection } from './client.js';
import { ChainError } from './errors.js';

/** Waits for a transaction and turns a failed receipt into a ChainError naming what was being done. */
export async function waitForSuccess(
  conn: SignerConnection,
  hash: Hash,
  what: string,
  options: { signal?: AbortSignal; timeoutMs?: number } = {},
): Promise<TransactionReceipt> {
  options.signal?.throwIfAborted();
  const receipt = await conn.publicClient.waitForTransactionReceipt({
    hash,
    timeout: options.timeoutMs ?? 120_000,
  });
  if (receipt.status !== 'success') {
    throw new ChainError('TX_REVERTED', `${what}: transaction ${hash} reverted`, { hash, what });
  }
  return receipt;
}

/**
 * The revert's custom error name and args when viem could decode them (e.g. `RewardAlreadyCalled`), so
 * callers branch on the contract's error rather than on message text.
 */
export function revertErrorName(err: unknown): string | undefined {
  if (!(err instanceof BaseError)) return undefined;
  const revert = err.walk((e) => e instanceof ContractFunctionRevertedError);
  if (revert instanceof ContractFunctionRevertedError) return revert.data?.errorName ?? revert.reason;
  return undefined;
}

export type { Abi };
