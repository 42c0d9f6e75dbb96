import { StreamflowError } from '../node/errors.js';

export type ChainErrorCode =
  | 'CHAIN_UNREACHABLE'
  | 'TX_REVERTED'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_CHAIN_MISMATCH'
  | 'KEY_INVALID'
  | 'NO_ACCOUNT';

export class ChainError extends StreamflowError<ChainErrorCode, Record<string, unknown>> {}
