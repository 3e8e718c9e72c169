/**
 * Reminders before a round's deadline (issue 8). Pure and deterministic: safe in workflow code.
 *
 * `RemindBefore` comes from COUNTERSIGN_REMIND_BEFORE through the run's windows: a fixed lead time, or a
 * percentage of the time the round (or its current escalation level) was given. Runs started without it
 * (before reminders existed) are never reminded.
 */
export type RemindBefore = { sec: number } | { percent: number };

/** Reminders closer than this to the start of a level are not worth sending (the first notice is fresh). */
const MIN_GAP_MS = 1_000;

/**
 * When to remind for one level of a round that started (or escalated) at `levelStartMs` with this deadline,
 * or null for no reminder: none configured, or the moment is not after the level's start.
 */
export function reminderAt(setting: RemindBefore | null | undefined, levelStartMs: number, deadlineMs: number): number | null {
  if (!setting) return null;
  const given = deadlineMs - levelStartMs;
  const lead = 'sec' in setting ? setting.sec * 1000 : Math.floor((given * setting.percent) / 100);
  const at = deadlineMs - lead;
  return at - levelStartMs >= MIN_GAP_MS && at < deadlineMs ? at : null;
}

/** COUNTERSIGN_REMIND_BEFORE as a setting: `off`, `25%`, or a duration in seconds (already parsed). */
export function remindBeforeSetting(value: string, durationSec: (v: string) => number | undefined): RemindBefore | null {
  if (value === 'off') return null;
  const pct = /^(\d{1,2})%$/.exec(value);
  if (pct) return { percent: Number(pct[1]) };
  const sec = durationSec(value);
  return sec ? { sec } : null;
}
