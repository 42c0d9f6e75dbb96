import type { VodProgress } from './vod.js';

/** Where progress goes: a TTY gets a bar redrawn in place, anything else one plain line per update. */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/**
 * Renders VOD progress on stderr: `[#######-----]  58%  12/20 s  seg 6  2.4× realtime  ETA 4 s`.
 * `done()` ends the bar's line so what follows starts on a fresh one.
 */
export function createProgressReporter(stream: ProgressStream): {
  update(p: VodProgress): void;
  done(): void;
} {
  const tty = stream.isTTY === true;
  let drawn = false;
  return {
    update(p) {
      const fraction = p.totalSeconds > 0 ? Math.min(1, p.secondsDone / p.totalSeconds) : undefined;
      const speed = p.elapsedMs > 0 ? p.secondsDone / (p.elapsedMs / 1000) : 0;
      const eta =
        fraction !== undefined && speed > 0
          ? Math.max(0, (p.totalSeconds - p.secondsDone) / speed)
          : undefined;
      const parts = [
        fraction === undefined ? '' : `${Math.round(fraction * 100)}%`.padStart(4),
        `${p.secondsDone.toFixed(1)}${p.totalSeconds > 0 ? `/${p.totalSeconds.toFixed(1)}` : ''} s`,
        `seg ${p.segmentsDone}`,
        `${speed.toFixed(2)}x realtime`,
        eta === undefined ? '' : `ETA ${Math.ceil(eta)} s`,
      ].filter(Boolean);
      if (!tty) {
        stream.write(`progress: ${parts.join('  ')}\n`);
        return;
      }
      const width = Math.max(10, Math.min(40, (stream.columns ?? 80) - 60));
      const filled = Math.round((fraction ?? 0) * width);
      const bar = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
      stream.write(`\r\x1b[2K${bar} ${parts.join('  ')}`);
      drawn = true;
    },
    done() {
      if (tty && drawn) stream.write('\n');
    },
  };
}
