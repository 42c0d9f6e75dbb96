/**
 * Does a rendition cover the same stretch of time as the source segment it claims to be made from? A size and
 * frame-rate check passes the honest renditions of *another* segment of the same stream (THREATS 26); the
 * timestamps do not, because the pipeline keeps the source's timeline (`-copyts`, docs/media.md): an honest
 * rendition of segment N starts where segment N starts, on the profile's frame grid, and lasts as long.
 *
 * Pure: the facts come from the bytes (`analyzeTs` through `segmentFacts` / `readRendition`), the verdict is
 * returned, and each caller turns it into its own error (`RenditionMismatch` at the broadcaster, a failed
 * transcoder in the orchestrator's pool).
 */
import { PTS_HZ, ptsDiff } from './mpegts.js';

/** What the check reads of a segment or a rendition, as `analyzeTs` measures it from the bytes. */
export interface TimingFacts {
  /** Lowest video PTS (presentation order, so B-frames do not move it), 90 kHz; undefined when none. */
  startPts: number | undefined;
  /** Seconds from the first frame to past the last (the last counted for the average frame length). */
  duration: number;
  /** Pictures. */
  frames: number;
  /** Frames per second from the timestamps; 0 for fewer than two frames. */
  fps: number;
}

/** Which fact disagrees. */
export type TimingMismatchReason = 'NoTimestamps' | 'StartShifted' | 'DurationDiffers' | 'FrameCount';

/** A rendition whose time does not match its source: what differs, by how much, and what was allowed. */
export interface TimingMismatch {
  reason: TimingMismatchReason;
  /** One line for an error message or a log. */
  message: string;
  /** Seconds for `StartShifted` / `DurationDiffers`, frames for `FrameCount`. */
  expected: number;
  actual: number;
  tolerance: number;
}

/**
 * Timestamp jitter allowed on top of a frame interval, seconds. FLV (RTMP ingest) carries whole milliseconds,
 * so a source's measured start and duration can each be off by about a millisecond from the frame grid the
 * rendition is on; measured on RTMP-cut segments: 0.3 ms.
 */
export const TIMESTAMP_JITTER_S = 0.002;

/**
 * The frame interval the start and duration of a rendition are allowed to differ by, seconds: one frame of
 * the coarser of the two rates. The fps filter puts the first output frame on the profile's grid within half
 * an output frame of the source's first frame, and ends within one frame of the source's end; converting a
 * 25 fps source to 30 moves each by up to 1/60 s, a 60 fps source to 30 by up to 1/60 s too.
 *
 * @param sourceFps measured source rate; 0 (a single frame) falls back to the profile's
 */
export function frameInterval(sourceFps: number, profileFps: number): number {
  const rates = [profileFps, sourceFps].filter((f) => Number.isFinite(f) && f > 0);
  return rates.length === 0 ? 0 : 1 / Math.min(...rates);
}

/**
 * Checks a rendition's time against its source segment's: its first PTS and its duration within one frame
 * interval ({@link frameInterval}, plus {@link TIMESTAMP_JITTER_S}), and its frame count within ±1 of the
 * profile's rate over the source's duration. Returns undefined when it matches.
 *
 * Honest output passes all three by construction, whatever the rates: the rendition is timed by the source's
 * own timestamps, so a 25 fps source in a 30 fps profile gives 30 × duration frames (repeats), a 60 fps source
 * 30 × duration (drops), a short last segment proportionally fewer; of a single-frame source (no measured
 * length) only the start is checked. A source without timestamps cannot be checked for its start (the
 * orchestrator refuses such a segment anyway); a rendition without them, for a source that has them, is a
 * mismatch.
 *
 * @param profileFps the frame rate the rendition was asked for, frames/s
 */
export function checkTiming(
  rendition: TimingFacts,
  source: TimingFacts,
  profileFps: number,
): TimingMismatch | undefined {
  const tolerance = frameInterval(source.fps, profileFps) + TIMESTAMP_JITTER_S;
  if (source.startPts !== undefined) {
    if (rendition.startPts === undefined) {
      return {
        reason: 'NoTimestamps',
        message: 'carries no presentation timestamps; the source segment does',
        expected: source.startPts / PTS_HZ,
        actual: Number.NaN,
        tolerance,
      };
    }
    const shift = ptsDiff(source.startPts, rendition.startPts) / PTS_HZ;
    if (Math.abs(shift) > tolerance) {
      return {
        reason: 'StartShifted',
        message: `starts ${seconds(Math.abs(shift))} ${shift > 0 ? 'after' : 'before'} the source segment (PTS ${rendition.startPts}, the source's ${source.startPts}; ${seconds(tolerance)} allowed): another segment's time`,
        expected: source.startPts / PTS_HZ,
        actual: rendition.startPts / PTS_HZ,
        tolerance,
      };
    }
  }
  // One frame has no measured length (the reader credits the last frame with the average before it), so its
  // renditions last whatever ffmpeg takes that frame's length to be: only their start can be held to it.
  if (source.frames < 2) return undefined;
  if (Math.abs(rendition.duration - source.duration) > tolerance) {
    return {
      reason: 'DurationDiffers',
      message: `lasts ${seconds(rendition.duration)}; the source segment lasts ${seconds(source.duration)} (${seconds(tolerance)} allowed)`,
      expected: source.duration,
      actual: rendition.duration,
      tolerance,
    };
  }
  const expectedFrames = source.duration * profileFps;
  // A hair over 1 so a product like 2.002 s × 30 = 60.06 is not lost to floating point at the boundary.
  if (Math.abs(rendition.frames - expectedFrames) > 1 + 1e-6) {
    return {
      reason: 'FrameCount',
      message: `has ${rendition.frames} frames; ${profileFps} fps over the source's ${seconds(source.duration)} is ${round(expectedFrames)} (±1)`,
      expected: expectedFrames,
      actual: rendition.frames,
      tolerance: 1,
    };
  }
  return undefined;
}

function seconds(s: number): string {
  return Math.abs(s) < 1 ? `${(s * 1000).toFixed(1)} ms` : `${s.toFixed(3)} s`;
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
