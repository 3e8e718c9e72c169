import { CountersignError } from '../errors.ts';

/**
 * The largest request body, in bytes. Every event a body can cause must fit the event topic's
 * max.message.bytes with room to spare (services/events/event-size.ts explains the arithmetic, and
 * test/unit/events/event-size.unit.test.ts checks it against the worst bodies).
 */
export const BODY_LIMIT_BYTES = 1024 * 1024;
export const MAX_JSON_DEPTH = 64;
export const MAX_JSON_NODES = 50_000;

/**
 * Bounds a parsed body before anything walks it recursively (validation, canonical JSON, hashing):
 * deep nesting would overflow the stack and huge fan-out would burn CPU. Iterative on purpose.
 */
export function checkJsonBounds(value: unknown): void {
  const stack: Array<[unknown, number, string]> = [[value, 0, '']];
  let nodes = 0;
  while (stack.length) {
    const [v, depth, path] = stack.pop()!;
    if (++nodes > MAX_JSON_NODES) throw new CountersignError('payload_too_large', `body has more than ${MAX_JSON_NODES} values`);
    if (v === null || typeof v !== 'object') continue;
    if (depth >= MAX_JSON_DEPTH) throw new CountersignError('bad_request', `body nests deeper than ${MAX_JSON_DEPTH} levels`, { errors: [{ path: path || '(root)', message: 'too deep' }] });
    if (Array.isArray(v)) v.forEach((x, i) => stack.push([x, depth + 1, path ? `${path}.${i}` : String(i)]));
    else for (const [k, x] of Object.entries(v)) stack.push([x, depth + 1, path ? `${path}.${k}` : k]);
  }
}
