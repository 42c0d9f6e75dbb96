import type { Address, Hex } from 'viem';
import { bytesToHex } from 'viem';
import { mnemonicToAccount, privateKeyToAccount } from 'viem/accounts';
import type { Logger } from '../node/logger.js';
import { type AnvilInstance, type AnvilOptions, startAnvil } from './anvil.js';
import { connectChain, type SignerConnection, withSigner } from './client.js';
import { type DeployParameters, deployStreamflow } from './deploy.js';
import type { DeploymentManifest } from './manifest.js';

/** anvil's well-known development mnemonic; its keys are public, for local chains only. */
export const ANVIL_MNEMONIC = 'test test test test test test test test test test test junk';

export interface DevnetOptions extends Omit<AnvilOptions, 'accounts'> {
  /** Funded accounts (ETH from anvil, LPT from genesis). Account 0 is the deployer. @default 10 */
  accounts?: number;
  /** LPT (wei) minted to each account. @default 10_000 LPT */
  lptPerAccount?: bigint;
  /** Protocol parameters; devnet defaults to short rounds so rewards and unbonding are watchable. */
  parameters?: Partial<DeployParameters>;
}

export interface DevnetAccount {
  readonly address: Address;
  readonly privateKey: Hex;
}

export interface Devnet {
  readonly rpcUrl: string;
  readonly chainId: number;
  readonly manifest: DeploymentManifest;
  readonly accounts: readonly DevnetAccount[];
  readonly anvil: AnvilInstance;
  /** A connection signing as account `i`. */
  signer(i: number): SignerConnection;
  /** Stops anvil; idempotent. */
  stop(): Promise<void>;
}

/** Devnet protocol parameters: 20-block rounds (20 s at the default block time) and a short unbonding period. */
export const DEVNET_PARAMETERS: Partial<DeployParameters> = {
  roundLength: 20n,
  unbondingPeriod: 2n,
};

export function devnetAccounts(n: number): DevnetAccount[] {
  return Array.from({ length: n }, (_, i) => {
    const hd = mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: i }).getHdKey();
    if (!hd.privateKey) throw new Error('HD derivation gave no private key');
    const privateKey = bytesToHex(hd.privateKey);
    return { address: privateKeyToAccount(privateKey).address, privateKey };
  });
}

/**
 * Starts anvil on a free loopback port, deploys and wires every contract, and funds the accounts with LPT.
 * A failure after anvil started stops it before rethrowing.
 */
export async function startDevnet(
  options: DevnetOptions = {},
  deps: { logger?: Logger; signal?: AbortSignal } = {},
): Promise<Devnet> {
  const n = options.accounts ?? 10;
  const { accounts: _ignored, lptPerAccount, parameters, ...anvilOptions } = options;
  const anvil = await startAnvil({ ...anvilOptions, accounts: n }, deps);
  try {
    const conn = await connectChain(anvil.rpcUrl, deps.signal ? { signal: deps.signal } : {});
    const accounts = devnetAccounts(n);
    const deployerKey = accounts[0]?.privateKey;
    if (!deployerKey) throw new Error('a devnet needs at least one account');
    const deployer = withSigner(conn, privateKeyToAccount(deployerKey));
    const amount = lptPerAccount ?? 10_000n * 10n ** 18n;
    const manifest = await deployStreamflow(
      deployer,
      {
        parameters: { ...DEVNET_PARAMETERS, ...parameters },
        genesis: accounts.map((a) => ({ address: a.address, amount })),
        ...(deps.signal ? { signal: deps.signal } : {}),
      },
      deps,
    );
    return {
      rpcUrl: anvil.rpcUrl,
      chainId: conn.chain.id,
      manifest,
      accounts,
      anvil,
      signer(i) {
        const a = accounts[i];
        if (!a) throw new RangeError(`devnet has ${accounts.length} accounts, not ${i + 1}`);
        return withSigner(conn, privateKeyToAccount(a.privateKey));
      },
      stop: () => anvil.stop(),
    };
  } catch (err) {
    await anvil.stop();
    throw err;
  }
}
