/**
 * An AbortSignal that fires on the first SIGINT or SIGTERM; a second one exits at once, for when a shutdown
 * hangs. Commands that run until Ctrl-C await their work with this signal and then shut down in order.
 */
export function shutdownSignal(onSecond: () => void = () => process.exit(130)): AbortSignal {
  const controller = new AbortController();
  const handler = (sig: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      onSecond();
      return;
    }
    controller.abort(new Error(`received ${sig}`));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return controller.signal;
}

/** Resolves when the signal aborts. */
export function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
