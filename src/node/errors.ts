/**
 * Base of every Streamflow error: a stable `code` callers branch on, typed `details`, and a message that says
 * what happened, why, and what to do. Codes that cross the wire (`LowPMBalance`,
 * `SegmentFormatDidntMatchJobInputParams`, …) keep their spelling on both sides.
 */
export class StreamflowError<Code extends string = string, Details = Record<string, unknown>> extends Error {
  readonly code: Code;
  readonly details: Details;

  constructor(code: Code, message: string, details: Details, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.details = details;
  }
}

/** Removes credentials from a URL before it reaches a message or a log line. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.username || u.password) {
      u.username = u.username ? '***' : '';
      u.password = u.password ? '***' : '';
    }
    for (const key of [...u.searchParams.keys()]) {
      if (/key|token|secret|password/i.test(key)) u.searchParams.set(key, '***');
    }
    return u.toString();
  } catch {
    return url;
  }
}
