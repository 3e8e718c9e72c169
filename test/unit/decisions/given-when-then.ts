// The run decider's given/when/then, shared by its unit tests: given these events, when this command (at this
// moment), then these events or this refusal.
import { expect } from 'vitest';
import { decide, runState, type RunCommand } from '../../../services/decisions/run-decider.ts';
import { foldRun, type RunEvent } from '../../../services/decisions/run-view.ts';

export const T0 = Date.parse('2026-12-01T10:00:00.000Z');
/** The moment `sec` seconds after T0. */
export const at = (sec: number) => new Date(T0 + sec * 1000);
export const iso = (sec: number) => at(sec).toISOString();

export function given(events: RunEvent[]) {
  return {
    when: (command: RunCommand, now = at(10)) => {
      const d = decide(runState(foldRun(events)), command, now);
      return {
        then: (expected: RunEvent[]) => { expect(d).toEqual({ ok: true, events: expected }); },
        refused: (reason: string | RegExp) => {
          expect(d.ok).toBe(false);
          if (!d.ok) expect(d.reason).toMatch(reason);
        },
        /** The events decided; a refusal throws (a step that must succeed). */
        events: () => { if (!d.ok) throw new Error(d.reason); return d.events; },
      };
    },
  };
}
