import { type Address, type Hex, keccak256, toHex } from 'viem';
import type { ChainConnection } from '../chain/client.js';
import { streamflowContracts } from '../chain/contracts.js';
import type { DeploymentManifest } from '../chain/manifest.js';
import { orchestratorPool } from '../chain/orchestrators.js';
import { redactUrl } from '../node/errors.js';
import { DiscoveryError } from './errors.js';
import { type DiscoveryOptions, defaultDiscoveryOptions } from './options.js';

/** An orchestrator the broadcaster may negotiate with. */
export interface OrchestratorCandidate {
  /** On-chain address; undefined for a static entry until `GetOrchestratorInfo` tells it. */
  address: Address | undefined;
  /** Where its RPC server listens (ServiceRegistry `serviceURI`, or the static list entry). */
  serviceUri: string;
  /** Total bonded stake, LPT wei; undefined for a static entry (the operator vouches for it instead). */
  stake: bigint | undefined;
  /** Service ids (bytes32) it advertises; empty for a static entry. */
  services: readonly Hex[];
  /** Region codes (bytes32) it advertises; empty for a static entry. */
  regions: readonly Hex[];
  source: 'chain' | 'static';
}

/** What the broadcaster asks discovery for. */
export interface DiscoveryRequest {
  /** Service id, see {@link serviceId}. */
  service: Hex;
  /** Region code, see {@link regionCode}; unset: any region. */
  region?: Hex | undefined;
  /** Least total stake, LPT wei. */
  minStake: bigint;
}

export interface DiscoveryDeps {
  conn: ChainConnection;
  manifest: DeploymentManifest;
  signal?: AbortSignal | undefined;
}

/** Service id as the ServiceRegistry stores it: keccak256 of the UTF-8 name, e.g. `transcode/h264`. */
export function serviceId(name: string): Hex {
  return keccak256(toHex(name));
}

/**
 * Region code as the ServiceRegistry stores it: the UTF-8 name right-padded with zeros to 32 bytes.
 * @throws DiscoveryError `NameTooLong` when the name is longer than 32 bytes.
 */
export function regionCode(name: string): Hex {
  const bytes = new TextEncoder().encode(name);
  if (bytes.length > 32) {
    throw new DiscoveryError(
      'NameTooLong',
      `Region name "${name}" is ${bytes.length} bytes; the ServiceRegistry stores at most 32. Use a shorter name.`,
      { name, bytes: bytes.length },
    );
  }
  return toHex(bytes, { size: 32 });
}

/**
 * Candidates from a static `--orchestrators` list, for networks without (or instead of) on-chain discovery.
 * No chain data: address, stake, services and regions are unknown until negotiation.
 * @throws DiscoveryError `InvalidOrchestratorUrl` for an entry that is not an http(s) URL.
 */
export function staticOrchestrators(urls: readonly string[]): OrchestratorCandidate[] {
  const seen = new Set<string>();
  const out: OrchestratorCandidate[] = [];
  for (const raw of urls) {
    const trimmed = raw.trim();
    let url: URL;
    try {
      url = new URL(trimmed);
    } catch (cause) {
      throw invalidUrl(trimmed, cause);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalidUrl(trimmed);
    const serviceUri = url.toString();
    if (seen.has(serviceUri)) continue;
    seen.add(serviceUri);
    out.push({
      address: undefined,
      serviceUri,
      stake: undefined,
      services: [],
      regions: [],
      source: 'static',
    });
  }
  return out;
}

function invalidUrl(raw: string, cause?: unknown): DiscoveryError {
  const entry = redactUrl(raw);
  return new DiscoveryError(
    'InvalidOrchestratorUrl',
    `Orchestrator "${entry}" is not an http(s) URL. Give each as https://host:port.`,
    { entry },
    cause === undefined ? undefined : { cause },
  );
}

/** Pool members discovery left out, by the first filter each failed. */
export interface DiscoveryFiltered {
  /** Not in the active set this round. */
  inactive: number;
  /** Below the stake floor. */
  stake: number;
  /** Not offering the service. */
  service: number;
  /** Not serving the region. */
  region: number;
  /** No service URI in the ServiceRegistry: unreachable whatever it advertises. */
  noServiceUri: number;
}

/** What {@link discoverWithReport} found, and what it left out. */
export interface DiscoveryReport {
  candidates: OrchestratorCandidate[];
  filtered: DiscoveryFiltered;
}

/**
 * Reads the orchestrator pool and the ServiceRegistry and returns the orchestrators that are in the active
 * set, offer `request.service`, serve `request.region` (when given) and have at least `request.minStake`,
 * in pool order (descending stake). Reads run `options.concurrency` at a time.
 */
export async function discoverOrchestrators(
  request: DiscoveryRequest,
  deps: DiscoveryDeps,
  options: Partial<DiscoveryOptions> = {},
): Promise<OrchestratorCandidate[]> {
  return (await discoverWithReport(request, deps, options)).candidates;
}

/**
 * {@link discoverOrchestrators}, also counting the pool members left out by the first filter each failed,
 * so a broadcaster that finds nobody can say why.
 */
export async function discoverWithReport(
  request: DiscoveryRequest,
  deps: DiscoveryDeps,
  options: Partial<DiscoveryOptions> = {},
): Promise<DiscoveryReport> {
  const opts = { ...defaultDiscoveryOptions, ...options };
  const { signal } = deps;
  signal?.throwIfAborted();
  const c = streamflowContracts(deps.conn, deps.manifest);
  const bm = c.bondingManager.read;
  const sr = c.serviceRegistry.read;

  const pool = await orchestratorPool(deps.conn, deps.manifest, signal);
  const filtered: DiscoveryFiltered = { inactive: 0, stake: 0, service: 0, region: 0, noServiceUri: 0 };

  const found = await mapLimit(pool, opts.concurrency, signal, async (address) => {
    // Cheap checks first: most of a large pool fails the stake floor or the service before the arrays are read.
    const [active, stake, offers, serves] = await Promise.all([
      bm.isActiveOrchestrator([address]),
      bm.orchestratorTotalStake([address]),
      sr.offersService([address, request.service]),
      request.region === undefined ? true : sr.servesRegion([address, request.region]),
    ]);
    const dropped: keyof DiscoveryFiltered | undefined = !active
      ? 'inactive'
      : stake < request.minStake
        ? 'stake'
        : !offers
          ? 'service'
          : !serves
            ? 'region'
            : undefined;
    if (dropped) {
      filtered[dropped]++;
      return undefined;
    }
    const [serviceUri, services, regions] = await Promise.all([
      sr.getServiceURI([address]),
      sr.getServices([address]),
      sr.getRegions([address]),
    ]);
    if (serviceUri === '') {
      filtered.noServiceUri++;
      return undefined;
    }
    const candidate: OrchestratorCandidate = {
      address,
      serviceUri,
      stake,
      services: services.map((s) => s.id),
      regions: [...regions],
      source: 'chain',
    };
    return candidate;
  });
  return { candidates: found.filter((x): x is OrchestratorCandidate => x !== undefined), filtered };
}

/** Maps `items` with at most `limit` calls in flight, keeping order; stops starting new calls once aborted. */
async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  signal: AbortSignal | undefined,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let index = 0;
  const worker = async () => {
    while (index < items.length) {
      signal?.throwIfAborted();
      const i = index++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  signal?.throwIfAborted();
  return out;
}
