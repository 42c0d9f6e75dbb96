import { StreamflowError } from '../node/errors.js';

export type ChainErrorCode =
  | 'CHAIN_UNREACHABLE'
  | 'TX_REVERTED'
  | 'TX_FAILED'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_CHAIN_MISMATCH'
  | 'KEY_INVALID'
  | 'NO_ACCOUNT'
  | 'ROUND_NOT_INITIALIZED';

export class ChainError extends StreamflowError<ChainErrorCode, Record<string, unknown>> {}
