import { StreamflowError } from '../node/errors.js';

/**
 * Why the transcoder pool refused or failed a segment. `OrchestratorBusy`, `Unauthenticated`,
 * `InvalidMessage` and `TranscodeFailed` are wire codes (src/rpc/errors.ts): they reach the broadcaster or
 * the remote transcoder as they are.
 */
export type PoolErrorCode = 'OrchestratorBusy' | 'Unauthenticated' | 'InvalidMessage' | 'TranscodeFailed';

export class PoolError extends StreamflowError<PoolErrorCode, Record<string, unknown>> {}

/**
 * Why {@link ensureRegistered} could not bring the on-chain record to what the operator asked:
 * `CutsLocked` (every attempt landed in the round lock window), `CutsAlwaysLocked` (the lock covers the whole
 * round, so no cut change can ever succeed), `NotRegistered` (no cuts given for an unregistered account).
 */
export type RegistrationErrorCode = 'CutsLocked' | 'CutsAlwaysLocked' | 'NotRegistered';

export class RegistrationError extends StreamflowError<RegistrationErrorCode, Record<string, unknown>> {}
