import type { Constraints } from '../../schemas/constraints.ts';

/**
 * The constraints of an ALLOW_WITH_CONSTRAINTS the gateway can enforce itself, checked before forwarding. Pure.
 * - `allowed_<arg>`: the argument's value (each element, for a list) must be in the list.
 * - `denied_<arg>`: no value may be in the list.
 * Values compare as strings (`120` matches "120"); an object value cannot be checked and is refused. An
 * allow-list on an argument the tool declares but the call leaves out is refused too: the upstream's default
 * could be anything. `max_runtime_sec` is enforced as the upstream call's timeout. Everything else is passed to
 * the upstream in `_meta`.
 */
export type ConstraintCheck =
  | { ok: true; enforced: string[]; passed: Record<string, unknown> }
  | { ok: false; violations: string[] };

function values(v: unknown): string[] | null {
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return [String(v)];
  if (Array.isArray(v) && v.every((x) => typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean')) return v.map(String);
  return null;
}

export function checkArgumentConstraints(constraints: Constraints, args: Record<string, unknown>, declared: ReadonlySet<string>): ConstraintCheck {
  const violations: string[] = [];
  const enforced: string[] = [];
  const passed: Record<string, unknown> = {};
  for (const [key, list] of Object.entries(constraints)) {
    if (list === undefined) continue;
    if (key === 'max_runtime_sec') {
      enforced.push(key);
      continue;
    }
    const m = /^(allowed|denied)_(.+)$/.exec(key);
    const arg = m?.[2];
    const applies = arg !== undefined && Array.isArray(list) && (Object.hasOwn(args, arg) || (m![1] === 'allowed' && declared.has(arg)));
    if (!applies) {
      passed[key] = list;
      continue;
    }
    enforced.push(key);
    const allowedOrDenied = new Set((list as unknown[]).map(String));
    if (!Object.hasOwn(args, arg)) {
      violations.push(`${key}: the argument ${arg} is allow-listed, so it must be given explicitly`);
      continue;
    }
    const given = values(args[arg]);
    if (given === null) {
      violations.push(`${key}: the argument ${arg} is not a string, number, boolean or a list of them, so it cannot be checked`);
      continue;
    }
    const bad = m![1] === 'allowed' ? given.filter((v) => !allowedOrDenied.has(v)) : given.filter((v) => allowedOrDenied.has(v));
    if (bad.length > 0) violations.push(`${key}: ${arg}=${bad.map((b) => JSON.stringify(b)).join(', ')} is ${m![1] === 'allowed' ? 'not in the allow-list' : 'in the deny-list'}`);
  }
  return violations.length > 0 ? { ok: false, violations } : { ok: true, enforced, passed };
}
