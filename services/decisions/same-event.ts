/**
 * Whether two run events say the same thing: the same type and the same data as JSON (key order, and keys whose
 * value is undefined, do not count; the log stores data as jsonb, which keeps neither). Pure: the workflow uses
 * it too, to recognise an event it is about to record that the log already holds.
 */
export function sameEvent(a: { type: string; data: unknown }, b: { type: string; data: unknown }): boolean {
  return a.type === b.type && sameJson(a.data, b.data);
}

function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bs = b as unknown[];
    return a.length === bs.length && a.every((x, i) => sameJson(x ?? null, bs[i] ?? null));
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const ak = Object.keys(ao).filter((k) => ao[k] !== undefined);
  const bk = Object.keys(bo).filter((k) => bo[k] !== undefined);
  return ak.length === bk.length && ak.every((k) => Object.hasOwn(bo, k) && sameJson(ao[k], bo[k]));
}
