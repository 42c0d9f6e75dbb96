import { StreamflowError } from '../node/errors.js';

/**
 * Why a segment was refused. Carried in `details.reason` of {@link SegmentFormatError} so the sender can act
 * (re-cut, re-encode, shorten) without parsing the message.
 */
export type SegmentRejectReason =
  | 'Empty'
  | 'TooLarge'
  | 'NotMpegTs'
  | 'NoVideo'
  | 'UnsupportedCodec'
  | 'TooFewFrames'
  | 'TooLong'
  | 'NoKeyframe'
  | 'MissingTimestamps'
  | 'NonMonotonicTimestamps'
  | 'TimestampSpanMismatch'
  | 'Undecodable';

export interface SegmentFormatDetails {
  reason: SegmentRejectReason;
  [fact: string]: unknown;
}

/**
 * A segment that does not match what the job accepts. The code is the wire code go-livepeer uses, so a
 * broadcaster on the other side of the RPC can branch on it.
 */
export class SegmentFormatError extends StreamflowError<
  'SegmentFormatDidntMatchJobInputParams',
  SegmentFormatDetails
> {
  constructor(
    reason: SegmentRejectReason,
    message: string,
    facts: Record<string, unknown> = {},
    cause?: unknown,
  ) {
    super(
      'SegmentFormatDidntMatchJobInputParams',
      `Segment rejected (${reason}): ${message}`,
      { ...facts, reason },
      cause === undefined ? undefined : { cause },
    );
  }
}

export type FfmpegErrorCode = 'FfmpegNotFound' | 'FfmpegSpawnFailed' | 'FfmpegFailed' | 'FfmpegTimeout';

export interface FfmpegErrorDetails {
  binary: string;
  exitCode?: number | null;
  signal?: string | null;
  /** Last lines ffmpeg wrote on stderr: the only place it says what went wrong. */
  stderrTail?: string;
  timeoutMs?: number;
}

/** ffmpeg or ffprobe could not be found, started, finished in time, or exited with an error. */
export class FfmpegError extends StreamflowError<FfmpegErrorCode, FfmpegErrorDetails> {}

export type ProfileErrorCode = 'InvalidProfile' | 'UnknownProfile';

/** A profile list or a custom profile file that does not validate. */
export class ProfileError extends StreamflowError<ProfileErrorCode, { issues: string[] }> {}

export type IngestErrorCode = 'IngestFailed' | 'KeyframeIntervalTooLong' | 'IngestTooLarge';

/** A live or VOD source that cannot be segmented. */
export class IngestError extends StreamflowError<IngestErrorCode, Record<string, unknown>> {}

export type ProbeErrorCode = 'ProbeFailed';

/** ffprobe could not read a file. */
export class ProbeError extends StreamflowError<ProbeErrorCode, { input: string; stderrTail?: string }> {}
