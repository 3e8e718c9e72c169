import type { Constraints } from '../../schemas/constraints.ts';

/**
 * Constraints merge to the tightest: numbers (max_*) to the minimum, allow-lists (allowed_*) to the
 * intersection, deny-lists (denied_*) to the union, requirements (require_*) with OR. The key prefix
 * decides, so keys added later merge correctly without code changes (schemas/constraints.ts).
 */
export function mergeConstraints(into: Record<string, unknown>, add: Constraints): void {
  for (const key in add) {
    const value: unknown = add[key];
    if (value === undefined) continue;
    const have = into[key];
    if (have === undefined) {
      into[key] = Array.isArray(value) ? [...(value as string[])] : value;
    } else if (key.startsWith('max_') && typeof have === 'number' && typeof value === 'number') {
      into[key] = Math.min(have, value);
    } else if (key.startsWith('allowed_') && Array.isArray(have) && Array.isArray(value)) {
      const keep = new Set(value as string[]);
      into[key] = (have as string[]).filter((v) => keep.has(v));
    } else if (key.startsWith('denied_') && Array.isArray(have) && Array.isArray(value)) {
      into[key] = [...new Set([...(have as string[]), ...(value as string[])])];
    } else if (key.startsWith('require_') && typeof have === 'boolean' && typeof value === 'boolean') {
      into[key] = have || value;
    }
  }
}
