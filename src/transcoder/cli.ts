import { type Command, InvalidArgumentError } from 'commander';
import { resolveMediaTools } from '../media/ffmpeg.js';
import { redactUrl } from '../node/errors.js';
import { createLogger, type Logger } from '../node/logger.js';
import { RemoteTranscoder } from './transcoder.js';

export interface TranscoderCliDeps {
  logger?: Logger;
  /** Ends the command; SIGINT/SIGTERM when absent. */
  signal?: AbortSignal;
  stdout?: { write(text: string): unknown };
}

function capacityArg(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new InvalidArgumentError('an integer from 1 to 64');
  return n;
}

/**
 * Adds `streamflow transcoder --orchestrator URL --secret S [--capacity N] [--ffmpeg PATH]`: a remote
 * transcoder that serves one orchestrator until SIGINT/SIGTERM. The secret may come from
 * `STREAMFLOW_TRANSCODER_SECRET` instead, so it stays out of `ps`.
 */
export function registerTranscoderCommand(program: Command, deps: TranscoderCliDeps = {}): Command {
  program
    .command('transcoder')
    .description('transcode segments for an orchestrator (no chain, no keys)')
    .requiredOption('--orchestrator <url>', "the orchestrator's RPC URL, e.g. http://127.0.0.1:8935")
    .option('--secret <secret>', 'shared transcoder secret (default: STREAMFLOW_TRANSCODER_SECRET)')
    .option('--capacity <n>', 'segments transcoded at once', capacityArg, 1)
    .option('--ffmpeg <path>', 'ffmpeg binary (default: STREAMFLOW_FFMPEG, then the bundled one)')
    .action(async (_opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<{
        orchestrator: string;
        secret?: string;
        capacity: number;
        ffmpeg?: string;
      }>();
      const secret = opts.secret ?? process.env.STREAMFLOW_TRANSCODER_SECRET;
      if (!secret) {
        throw new InvalidArgumentError('pass --secret or set STREAMFLOW_TRANSCODER_SECRET');
      }
      const logger = deps.logger ?? createLogger();
      const tools = resolveMediaTools({ ffmpegPath: opts.ffmpeg });
      const transcoder = new RemoteTranscoder(
        { orchestrator: opts.orchestrator, secret, capacity: opts.capacity },
        { tools, logger },
      );
      const signal = deps.signal ?? processSignal();
      transcoder.start();
      (deps.stdout ?? process.stdout).write(
        `transcoder serving ${redactUrl(opts.orchestrator)} with capacity ${opts.capacity}; Ctrl-C to stop\n`,
      );
      await new Promise<void>((resolve) => {
        if (signal.aborted) resolve();
        else signal.addEventListener('abort', () => resolve(), { once: true });
      });
      await transcoder.stop();
    });
  return program;
}

/** Aborts on the first SIGINT/SIGTERM; a second one exits at once, for a shutdown that hangs. */
function processSignal(): AbortSignal {
  const controller = new AbortController();
  const handler = (sig: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(130);
    controller.abort(new Error(`received ${sig}`));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return controller.signal;
}
