import type { WEEKDAYS} from '../../schemas/policy.ts';
import { type TimeWindow } from '../../schemas/policy.ts';

/**
 * Time windows are read in their IANA zone from the `now` the caller passes in, never from the
 * process clock. Intl formatters are costly to build, so one is kept per zone.
 */
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: zone, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    formatters.set(zone, f);
  }
  return f;
}

export type LocalTime = { day: (typeof WEEKDAYS)[number]; minutes: number };

export function localTime(now: Date, zone: string): LocalTime {
  let day = 'Sun';
  let hour = 0;
  let minute = 0;
  for (const p of formatterFor(zone).formatToParts(now)) {
    if (p.type === 'weekday') day = p.value;
    else if (p.type === 'hour') hour = Number(p.value) % 24;
    else if (p.type === 'minute') minute = Number(p.value);
  }
  return { day: day as LocalTime['day'], minutes: hour * 60 + minute };
}

function clockMinutes(hhmm: string): number {
  return Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));
}

/**
 * True when `now` is inside the window: the local day is one of `days` (if given) and the local time is
 * at or after `after` and before `before`. With after > before the window wraps midnight
 * (after 22:00 before 06:00 is the night); `days` is always the local day of `now` itself.
 */
export function inTimeWindow(window: Pick<TimeWindow, 'days' | 'after' | 'before'> & { timezone: string }, now: Date): boolean {
  const local = localTime(now, window.timezone);
  if (window.days !== undefined && !window.days.includes(local.day)) return false;
  const after = window.after === undefined ? undefined : clockMinutes(window.after);
  const before = window.before === undefined ? undefined : clockMinutes(window.before);
  if (after !== undefined && before !== undefined && after > before) return local.minutes >= after || local.minutes < before;
  if (after !== undefined && local.minutes < after) return false;
  if (before !== undefined && local.minutes >= before) return false;
  return true;
}
