import { describe, expect, it } from 'vitest';
import { ProfileError } from '../../../src/media/errors.js';
import { fitInside, PRESETS, parseProfilesJson, resolveProfiles } from '../../../src/media/profiles.js';

function profileError(fn: () => unknown): ProfileError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ProfileError) return err;
    throw err;
  }
  throw new Error('expected a ProfileError');
}

describe('profiles', () => {
  it('has the named presets with size, fps, bitrate and GOP', () => {
    for (const name of ['240p30', '360p30', '480p30', '720p30', '720p60', '1080p30']) {
      const p = PRESETS[name];
      expect(p, name).toBeDefined();
      expect(p?.width ?? 1, name).toSatisfy((w: number) => w % 2 === 0);
      expect(p?.height ?? 1, name).toSatisfy((h: number) => h % 2 === 0);
      expect(p?.bitrate, name).toBeGreaterThan(0);
      expect(p?.gop, name).toBeGreaterThan(0);
      expect(p?.fps, name).toBe(Number(name.split('p')[1]));
      expect(p?.height, name).toBe(Number(name.split('p')[0]));
    }
  });

  it('resolves a comma-separated list in order', () => {
    expect(resolveProfiles('360p30, 240p30').map((p) => p.name)).toEqual(['360p30', '240p30']);
  });

  it('names the unknown profile and the known ones', () => {
    const err = profileError(() => resolveProfiles('360p30,999p7'));
    expect(err.code).toBe('UnknownProfile');
    expect(err.message).toContain('999p7');
    expect(err.message).toContain('240p30');
  });

  it('refuses duplicates and empty lists', () => {
    expect(profileError(() => resolveProfiles('240p30,240p30')).code).toBe('InvalidProfile');
    expect(profileError(() => resolveProfiles(' , ')).code).toBe('InvalidProfile');
  });

  it('parses custom profiles (array or {profiles}) with bitrate units and GOP default', () => {
    const list = parseProfilesJson(
      JSON.stringify([
        { name: 'tiny', width: 192, height: 108, fps: 15, bitrate: '1.5M', h264Profile: 'main' },
      ]),
    );
    expect(list).toEqual([
      { name: 'tiny', width: 192, height: 108, fps: 15, bitrate: 1_500_000, gop: 2, h264Profile: 'main' },
    ]);
    const wrapped = parseProfilesJson(
      JSON.stringify({ profiles: [{ name: 'x', width: 64, height: 36, fps: 10, bitrate: 50000 }] }),
    );
    expect(wrapped[0]?.bitrate).toBe(50_000);
    expect(resolveProfiles('x,240p30', wrapped).map((p) => p.width)).toEqual([64, 426]);
  });

  it('explains every invalid field with its path', () => {
    const err = profileError(() =>
      parseProfilesJson(
        JSON.stringify([
          { name: 'ok', width: 64, height: 36, fps: 10, bitrate: '100k' },
          { name: 'bad one', width: 641, height: 360, bitrate: 'fast', colour: 'red' },
        ]),
      ),
    );
    expect(err.code).toBe('InvalidProfile');
    const text = err.details.issues.join('\n');
    expect(text).toMatch(/\[1\]\.name/);
    expect(text).toMatch(/\[1\]\.width: width must be even/);
    expect(text).toMatch(/\[1\]\.fps/);
    expect(text).toMatch(/\[1\]\.bitrate/);
    expect(text).toMatch(/colour/);
    expect(profileError(() => parseProfilesJson('{not json')).code).toBe('InvalidProfile');
    expect(profileError(() => parseProfilesJson('[]')).code).toBe('InvalidProfile');
  });

  it('fits sources inside the box keeping their aspect, with even sides', () => {
    const cases: Array<[number, { width: number; height: number }, [number, number]]> = [
      [16 / 9, { width: 640, height: 360 }, [640, 360]],
      [16 / 9, { width: 426, height: 240 }, [426, 240]],
      [4 / 3, { width: 640, height: 360 }, [480, 360]],
      [4 / 3, { width: 426, height: 240 }, [320, 240]],
      [9 / 16, { width: 640, height: 360 }, [202, 360]],
      [21 / 9, { width: 854, height: 480 }, [854, 366]],
    ];
    for (const [dar, box, want] of cases) {
      const got = fitInside(dar, box);
      expect([got.width, got.height], `${dar.toFixed(3)} in ${box.width}x${box.height}`).toEqual(want);
    }
  });
});
