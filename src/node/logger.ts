import { destination, type Logger, pino } from 'pino';

export type { Logger };

/**
 * The root logger of a node. JSON lines on stderr so stdout stays free for a command's own output (the CLI's
 * `--json` summaries). Level from `STREAMFLOW_LOG_LEVEL`, default `info`; `silent` in tests.
 */
export function createLogger(options: { level?: string; name?: string } = {}): Logger {
  const level = options.level ?? process.env.STREAMFLOW_LOG_LEVEL ?? 'info';
  return pino({ level, name: options.name ?? 'streamflow' }, destination(2));
}

/** A logger that drops everything, for tests and library use without a logger. */
export const silentLogger: Logger = pino({ level: 'silent' });
