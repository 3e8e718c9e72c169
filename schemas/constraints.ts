import { z } from 'zod';

/**
 * Constraints bound what an allowed action may do. The vocabulary is open but typed by key prefix, so the
 * combiner can merge keys it has never seen to the tightest value:
 * - `max_*`: a positive number; merges to the minimum.
 * - `allowed_*`: a list of strings; merges to the intersection (an allow-list can only shrink).
 * - `denied_*`: a list of strings; merges to the union (a deny-list can only grow).
 * - `require_*`: a boolean; merges with OR (once required, always required).
 */
// Values are checked in the refinement below (not by a union), so a bad value gets a message naming its key's kind.
const ConstraintValue = z.unknown();

export const CONSTRAINT_KEY = /^(max|allowed|denied|require)_[a-z0-9_]{1,64}$/;

export const Constraints = z
  .object({
    max_runtime_sec: z.number().int().positive().optional().describe('Wall-clock limit for the tool call, seconds.'),
    max_diff_lines: z.number().int().positive().optional().describe('Largest diff the action may produce, lines.'),
  })
  .catchall(ConstraintValue)
  .superRefine((value, ctx) => {
    for (const [key, v] of Object.entries(value)) {
      if (v === undefined) continue;
      if (!CONSTRAINT_KEY.test(key)) {
        ctx.addIssue({ code: 'custom', path: [key], message: `unknown constraint "${key}": constraint names start with max_, allowed_, denied_ or require_` });
        continue;
      }
      const kind = key.slice(0, key.indexOf('_'));
      const ok =
        kind === 'max'
          ? typeof v === 'number' && Number.isFinite(v) && v > 0
          : kind === 'require'
            ? typeof v === 'boolean'
            : Array.isArray(v) && v.length <= 1000 && v.every((x) => typeof x === 'string' && x.length > 0 && x.length <= 500);
      if (!ok) {
        const want = kind === 'max' ? 'a positive number' : kind === 'require' ? 'true or false' : 'a list of strings (at most 1000)';
        ctx.addIssue({ code: 'custom', path: [key], message: `constraint ${key} must be ${want}` });
      }
    }
  })
  .describe('Limits the caller must apply.');
export type Constraints = z.infer<typeof Constraints>;
