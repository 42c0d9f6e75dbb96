import { StreamflowError } from '../node/errors.js';

/**
 * Why discovery refused an input. Local codes (none crosses the wire):
 * - `NameTooLong`: a service or region name does not fit in the 32 bytes the ServiceRegistry stores.
 * - `InvalidOrchestratorUrl`: an entry of the static `--orchestrators` list is not an http(s) URL.
 */
export type DiscoveryErrorCode = 'NameTooLong' | 'InvalidOrchestratorUrl';

export class DiscoveryError extends StreamflowError<DiscoveryErrorCode, Record<string, unknown>> {}

/**
 * Why the broadcaster could not do a job. Local codes:
 * - `NoOrchestrator`: every orchestrator was tried for a segment (or none is known); the segment goes out as
 *   the source only.
 */
export type BroadcasterErrorCode = 'NoOrchestrator';

export class BroadcasterError extends StreamflowError<BroadcasterErrorCode, Record<string, unknown>> {}
