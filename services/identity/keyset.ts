/**
 * Keyset pagination over (created_at, id): stable under concurrent inserts, unlike OFFSET. `t` is the
 * row's created_at as Postgres prints it (microseconds kept; a JS Date would round them away and repeat or
 * skip rows that share a millisecond).
 */
export type Keyset = { t: string; id: string };
export type Page<T> = { items: T[]; next: Keyset | null };

export function keysetPage<R extends { created_key: string; id: string }, T>(rows: R[], limit: number, view: (r: R) => T): Page<T> {
  const more = rows.length > limit;
  const kept = more ? rows.slice(0, limit) : rows;
  const last = kept[kept.length - 1];
  return { items: kept.map(view), next: more && last ? { t: last.created_key, id: last.id } : null };
}
