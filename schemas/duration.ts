import { z } from 'zod';

const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 } as const;
const DURATION = /^(?:(\d{1,6})(s|m|h|d|w))+$/;
const PART = /(\d{1,6})(s|m|h|d|w)/g;
/** Longest duration a window, timeout or escalation may have: one year keeps counters and timers bounded. */
export const MAX_DURATION_SEC = 366 * 86_400;

/**
 * Seconds in a duration such as `90s`, `30m`, `1h30m`, `1d`, `2w`, or undefined when it is not one.
 * Hand-written because it is ours: the grammar is tiny and the bound matters more than the features.
 */
export function durationSeconds(text: string): number | undefined {
  if (text.length > 40 || !DURATION.test(text)) return undefined;
  let total = 0;
  for (const m of text.matchAll(PART)) total += Number(m[1]) * UNIT_SECONDS[m[2] as keyof typeof UNIT_SECONDS];
  return total > 0 && total <= MAX_DURATION_SEC ? total : undefined;
}

export const Duration = z
  .string()
  .refine((s) => durationSeconds(s) !== undefined, {
    message: `expected a duration such as 90s, 30m, 1h30m, 1d or 2w (more than 0, at most ${MAX_DURATION_SEC / 86_400}d)`,
  })
  .describe('A duration: digits and a unit (s, m, h, d, w), possibly repeated, e.g. 1h30m.');

/** Bounds of a duration setting (tenant and platform settings): long enough for any review, short enough that a typo cannot park a run for a year. */
export const SETTING_DURATION_MIN_SEC = 1;
export const SETTING_DURATION_MAX_SEC = 30 * 86_400;

/**
 * A duration setting: the Duration grammar, from 1s to 30d. The bounds are in the description too, because a
 * refinement does not reach the JSON Schema of the OpenAPI document.
 */
export function settingDuration(what: string) {
  return z
    .string()
    .refine((s) => {
      const sec = durationSeconds(s);
      return sec !== undefined && sec >= SETTING_DURATION_MIN_SEC && sec <= SETTING_DURATION_MAX_SEC;
    }, { message: 'expected a duration such as 30m, 72h or 1h30m, from 1s to 30d' })
    .describe(`${what} A duration such as 30m, 72h or 1h30m (units s, m, h, d, w); at least 1s, at most 30d.`);
}

/**
 * A duration setting as recorded before the bounds (events, stored rows): any short string. Reads accept it so
 * old events still parse and a stored value out of bounds falls back to the default instead of losing every
 * other setting; writes go through settingDuration.
 */
export function recordedSettingDuration(what: string) {
  return z.string().max(200).describe(what);
}

/** Seconds written as a duration of the grammar above, largest units first: 5400 is 1h30m, 90 is 1m30s. */
export function durationText(sec: number): string {
  let rest = Math.floor(sec);
  let out = '';
  for (const [unit, size] of [['w', 604_800], ['d', 86_400], ['h', 3600], ['m', 60], ['s', 1]] as const) {
    if (rest >= size) {
      out += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  return out || '0s';
}

/** A recorded duration setting's seconds, or undefined when it is absent or outside the settings' bounds (its default then applies). */
export function settingSeconds(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const sec = durationSeconds(text);
  return sec !== undefined && sec >= SETTING_DURATION_MIN_SEC && sec <= SETTING_DURATION_MAX_SEC ? sec : undefined;
}
