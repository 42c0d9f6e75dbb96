import { z } from 'zod';
import { ProfileError } from './errors.js';

/**
 * One output rendition. `width` × `height` is a box: a source of another aspect ratio is fitted inside it
 * (see {@link fitInside}), so a 4:3 source asked for 640×360 comes out 480×360.
 */
export interface Profile {
  /** Name used in URLs and file paths: letters, digits, `_`, `-`. */
  name: string;
  /** Box width, pixels, even. */
  width: number;
  /** Box height, pixels, even. */
  height: number;
  /** Output frame rate, frames per second (frames are dropped or repeated to reach it). */
  fps: number;
  /** Target video bitrate, bits per second (also the VBV max rate; buffer is two seconds of it). */
  bitrate: number;
  /** Keyframe interval, seconds. Each segment starts with a keyframe whatever this is. @default 2 */
  gop: number;
  /** H.264 profile. @default 'high' (x264's choice for 8-bit 4:2:0) */
  h264Profile?: 'baseline' | 'main' | 'high';
}

const preset = (name: string, width: number, height: number, fps: number, kbps: number): Profile => ({
  name,
  width,
  height,
  fps,
  bitrate: kbps * 1000,
  gop: 2,
});

/** Named presets, 16:9 boxes. Bitrates are x264 `veryfast` figures for talking-head to sport content. */
export const PRESETS: Readonly<Record<string, Profile>> = Object.freeze({
  '144p30': preset('144p30', 256, 144, 30, 200),
  '240p30': preset('240p30', 426, 240, 30, 400),
  '360p30': preset('360p30', 640, 360, 30, 800),
  '480p30': preset('480p30', 854, 480, 30, 1400),
  '720p30': preset('720p30', 1280, 720, 30, 3000),
  '720p60': preset('720p60', 1280, 720, 60, 4500),
  '1080p30': preset('1080p30', 1920, 1080, 30, 5000),
  '1080p60': preset('1080p60', 1920, 1080, 60, 7500),
});

/** Accepts `600000`, `"600k"`, `"1.5M"`. */
const bitrateSchema = z.union([
  z.number().int().min(16_000).max(200_000_000),
  z
    .string()
    .regex(/^\d+(\.\d+)?[kKmM]?$/, 'a bitrate like 600000, "600k" or "1.5M"')
    .transform((s, ctx) => {
      const unit = s.slice(-1).toLowerCase();
      const scale = unit === 'k' ? 1e3 : unit === 'm' ? 1e6 : 1;
      const n = Math.round(Number.parseFloat(scale === 1 ? s : s.slice(0, -1)) * scale);
      if (n < 16_000 || n > 200_000_000) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'bitrate must be between 16k and 200M bits/s' });
        return z.NEVER;
      }
      return n;
    }),
]);

const evenDimension = (what: string) =>
  z
    .number()
    .int()
    .min(16, `${what} must be at least 16 pixels`)
    .max(7680, `${what} must be at most 7680 pixels`)
    .refine((n) => n % 2 === 0, `${what} must be even (4:2:0 chroma)`);

export const profileSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/, 'name: 1–32 letters, digits, "_" or "-"'),
    width: evenDimension('width'),
    height: evenDimension('height'),
    fps: z.number().positive().max(120),
    bitrate: bitrateSchema,
    gop: z.number().positive().max(20).default(2),
    h264Profile: z.enum(['baseline', 'main', 'high']).optional(),
  })
  .strict();

const profileListSchema = z.array(profileSchema).min(1, 'at least one profile is needed');

/**
 * Validates custom profiles given as JSON text: an array of profiles or `{ "profiles": [...] }`. Throws
 * {@link ProfileError} `InvalidProfile` listing every problem with its path (`profiles[1].width: …`).
 */
export function parseProfilesJson(json: string): Profile[] {
  let data: unknown;
  try {
    data = JSON.parse(json);
  } catch (err) {
    throw new ProfileError('InvalidProfile', `Profiles are not valid JSON: ${(err as Error).message}`, {
      issues: [(err as Error).message],
    });
  }
  return validateProfiles(data);
}

/** As {@link parseProfilesJson}, for already-parsed data. */
export function validateProfiles(data: unknown): Profile[] {
  // Pick the shape first: a union schema would only say "Invalid input" for a bad field.
  const wrapped = typeof data === 'object' && data !== null && !Array.isArray(data) && 'profiles' in data;
  const parsed = profileListSchema.safeParse(wrapped ? (data as { profiles: unknown }).profiles : data);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => {
      const path = i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('');
      return `profiles${path}: ${i.message}`;
    });
    throw new ProfileError(
      'InvalidProfile',
      `Invalid profiles: ${issues.join('; ')}. Each profile needs name, width, height (even), fps, bitrate.`,
      { issues },
    );
  }
  const profiles = parsed.data.map(stripUndefined);
  assertUniqueNames(profiles);
  return profiles;
}

/**
 * Resolves a comma-separated list of preset names (`360p30,240p30`), optionally against extra custom profiles
 * that may shadow presets. Throws {@link ProfileError} `UnknownProfile` naming the known ones.
 */
export function resolveProfiles(spec: string, custom: readonly Profile[] = []): Profile[] {
  const names = spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 0) {
    throw new ProfileError('InvalidProfile', 'No profiles given: pass e.g. --profiles 360p30,240p30', {
      issues: ['empty list'],
    });
  }
  const byName = new Map<string, Profile>(Object.entries(PRESETS));
  for (const p of custom) byName.set(p.name, p);
  const unknown = names.filter((n) => !byName.has(n));
  if (unknown.length > 0) {
    throw new ProfileError(
      'UnknownProfile',
      `Unknown profile ${unknown.join(', ')}; known: ${[...byName.keys()].join(', ')}`,
      { issues: unknown.map((n) => `unknown profile ${n}`) },
    );
  }
  const profiles = names.map((n) => byName.get(n) as Profile);
  assertUniqueNames(profiles);
  return profiles;
}

function assertUniqueNames(profiles: readonly Profile[]): void {
  const seen = new Set<string>();
  for (const p of profiles) {
    if (seen.has(p.name)) {
      throw new ProfileError('InvalidProfile', `Profile ${p.name} is listed twice; names must be unique`, {
        issues: [`duplicate name ${p.name}`],
      });
    }
    seen.add(p.name);
  }
}

function stripUndefined(p: z.output<typeof profileSchema>): Profile {
  const { h264Profile, ...rest } = p;
  return h264Profile === undefined ? rest : { ...rest, h264Profile };
}

/**
 * The output size of a source of display aspect `dar` (width / height, sample aspect applied) fitted inside
 * `box`: the limiting side fills the box, the other keeps the aspect and is rounded to an even number.
 * The same rule is written as the ffmpeg scale expression in {@link scaleFilter}.
 */
export function fitInside(
  dar: number,
  box: { width: number; height: number },
): { width: number; height: number } {
  if (dar >= box.width / box.height) {
    return { width: box.width, height: Math.max(2, 2 * Math.round(box.width / dar / 2)) };
  }
  return { width: Math.max(2, 2 * Math.round((box.height * dar) / 2)), height: box.height };
}

/**
 * ffmpeg filter chain for one profile: frame rate, then fit-inside scale computed by ffmpeg from the decoded
 * frame's own size and sample aspect (`dar`), so no probe of the source size is needed first.
 */
export function scaleFilter(p: Profile): string {
  const w = p.width;
  const h = p.height;
  // Single quotes protect the expression's commas from the filtergraph parser (we spawn without a shell).
  const wide = `gte(dar,${w}/${h})`;
  return [
    `fps=${p.fps}`,
    `scale=w='if(${wide},${w},2*round(${h}*dar/2))':h='if(${wide},2*round(${w}/dar/2),${h})'`,
    'setsar=1',
    'format=yuv420p',
  ].join(',');
}
