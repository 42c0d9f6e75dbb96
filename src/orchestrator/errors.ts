import { StreamflowError } from '../node/errors.js';

/**
 * Why the transcoder pool refused or failed a segment. `OrchestratorBusy`, `Unauthenticated`,
 * `InvalidMessage` and `TranscodeFailed` are wire codes (src/rpc/errors.ts): they reach the broadcaster or
 * the remote transcoder as they are.
 */
export type PoolErrorCode = 'OrchestratorBusy' | 'Unauthenticated' | 'InvalidMessage' | 'TranscodeFailed';

export class PoolError extends StreamflowError<PoolErrorCode, Record<string, unknown>> {}
