import {
  type Abi,
  BaseError,
  ContractFunctionRevertedError,
  type Hash,
  type TransactionReceipt,
  toFunctionSelector,
} from 'viem';
import { formatAbiItem } from 'viem/utils';
import type { SignerConnection } from './client.js';
import { abis } from './contracts.js';
import { ChainError } from './errors.js';

/**
 * Every custom error of every Streamflow contract by selector: a call reverts with the error of whichever
 * contract refused (the TicketBroker bubbles up the BondingManager's), which the called contract's ABI lacks.
 */
const ERROR_NAMES: ReadonlyMap<string, string> = new Map(
  Object.values(abis)
    .flat()
    .filter((item) => item.type === 'error')
    .map((item) => [toFunctionSelector(formatAbiItem(item)), item.name] as const),
);

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
  if (!(revert instanceof ContractFunctionRevertedError)) return undefined;
  if (revert.data?.errorName) return revert.data.errorName;
  if (revert.signature) return ERROR_NAMES.get(revert.signature.toLowerCase()) ?? revert.reason;
  return revert.reason;
}

/**
 * One line for a log: viem's short message and the contract's error name, without the ABI and call dump a
 * viem error carries (kilobytes per line).
 */
export function describeError(err: unknown): string {
  if (err instanceof BaseError) {
    const name = revertErrorName(err);
    const fn = (err as { functionName?: string }).functionName;
    if (name) return `${fn ?? 'contract call'} reverted with ${name}`;
    return err.shortMessage.replace(/\s*\n\s*/g, ' ');
  }
  return err instanceof Error ? err.message : String(err);
}

export type { Abi };
