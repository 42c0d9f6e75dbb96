import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { getAddress } from 'viem';
import { z } from 'zod';
import { ChainError } from './errors.js';

const address = z
  .string()
  .regex(/^0x[0-9a-fA-F]{40}$/, 'an 0x-prefixed 20-byte address')
  .transform((a) => getAddress(a));

export const CONTRACT_NAMES = [
  'LivepeerToken',
  'RoundsManager',
  'Minter',
  'BondingManager',
  'ServiceRegistry',
  'TicketBroker',
] as const;
export type ContractName = (typeof CONTRACT_NAMES)[number];

const manifestSchema = z.object({
  version: z.literal(1),
  chainId: z.number().int().positive(),
  deployBlock: z.number().int().nonnegative(),
  deployer: address,
  solcVersion: z.string(),
  contracts: z.object({
    LivepeerToken: address,
    RoundsManager: address,
    Minter: address,
    BondingManager: address,
    ServiceRegistry: address,
    TicketBroker: address,
  }),
  parameters: z.record(z.string(), z.union([z.string(), z.number()])),
});

/** What a deployment leaves behind: enough for any node to find and check the contracts. */
export type DeploymentManifest = z.infer<typeof manifestSchema>;

export function parseManifest(json: unknown, source = 'manifest'): DeploymentManifest {
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new ChainError('MANIFEST_INVALID', `${source} is not a Streamflow deployment manifest: ${issues}`, {
      issues,
    });
  }
  return parsed.data;
}

export async function readManifest(path: string): Promise<DeploymentManifest> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new ChainError(
      'MANIFEST_INVALID',
      `cannot read the deployment manifest ${path}`,
      { path },
      { cause },
    );
  }
  try {
    return parseManifest(JSON.parse(text), path);
  } catch (cause) {
    if (cause instanceof ChainError) throw cause;
    throw new ChainError('MANIFEST_INVALID', `${path} is not valid JSON`, { path }, { cause });
  }
}

/** Writes the manifest atomically (temp file + rename), so a crash never leaves half a file. */
export async function writeManifest(path: string, manifest: DeploymentManifest): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(manifest, null, 2)}\n`);
  await rename(tmp, path);
}
