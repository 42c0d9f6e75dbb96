import {
  type Account,
  type Chain,
  createPublicClient,
  createWalletClient,
  defineChain,
  type Hex,
  http,
  type PublicClient,
  type Transport,
  type WalletClient,
} from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { redactUrl } from '../node/errors.js';
import { ChainError } from './errors.js';

export type StreamflowPublicClient = PublicClient<Transport, Chain>;
export type StreamflowWalletClient = WalletClient<Transport, Chain, Account>;

export interface ChainConnection {
  readonly rpcUrl: string;
  readonly chain: Chain;
  readonly publicClient: StreamflowPublicClient;
}

export interface SignerConnection extends ChainConnection {
  readonly account: Account;
  readonly walletClient: StreamflowWalletClient;
}

/** Polling interval for receipts and watchers; loopback devnets answer in well under this. @default 250 */
const DEFAULT_POLLING_MS = 250;

/**
 * Connects to any EVM JSON-RPC endpoint. The chain id is read from the endpoint, so the same code serves the
 * embedded anvil, a testnet or an L2.
 */
export async function connectChain(
  rpcUrl: string,
  options: { pollingIntervalMs?: number; signal?: AbortSignal } = {},
): Promise<ChainConnection> {
  const transport = http(rpcUrl, { retryCount: 2, timeout: 15_000 });
  const probe = createPublicClient({ transport });
  let chainId: number;
  try {
    chainId = await probe.getChainId();
  } catch (cause) {
    throw new ChainError(
      'CHAIN_UNREACHABLE',
      `cannot reach the chain at ${redactUrl(rpcUrl)}: is the node running and the URL right?`,
      { rpcUrl: redactUrl(rpcUrl) },
      { cause },
    );
  }
  const chain = defineChain({
    id: chainId,
    name: `chain-${chainId}`,
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
  });
  const publicClient = createPublicClient({
    chain,
    transport,
    pollingInterval: options.pollingIntervalMs ?? DEFAULT_POLLING_MS,
  }) as StreamflowPublicClient;
  return { rpcUrl, chain, publicClient };
}

/** Adds a signing account to a connection. */
export function withSigner(conn: ChainConnection, account: Account): SignerConnection {
  const walletClient = createWalletClient({
    account,
    chain: conn.chain,
    transport: http(conn.rpcUrl, { retryCount: 2, timeout: 15_000 }),
    pollingInterval: conn.publicClient.pollingInterval,
  });
  return { ...conn, account, walletClient };
}

/** Parses a hex private key (with or without 0x, surrounding whitespace allowed), e.g. from a key file. */
export function accountFromPrivateKey(text: string): Account {
  const trimmed = text.trim();
  const hex = (trimmed.startsWith('0x') ? trimmed : `0x${trimmed}`) as Hex;
  if (!/^0x[0-9a-fA-F]{64}$/.test(hex)) {
    throw new ChainError('KEY_INVALID', 'the key file must hold one 32-byte private key in hex', {});
  }
  return privateKeyToAccount(hex);
}
