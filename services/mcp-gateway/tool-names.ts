/**
 * The names clients see when several upstreams are merged into one server. Pure.
 * - `on-collision` (default): a tool, prompt keeps its own name unless another upstream has the same one;
 *   then every upstream that has it exposes `upstream__name`.
 * - `prefixed`: always `upstream__name`, so adding an upstream never renames anything.
 * The route back is a table, never a split on `__` (tool names may contain it themselves).
 */
export const NAME_SEPARATOR = '__';
export type NamingMode = 'on-collision' | 'prefixed';
export type Route = { upstream: string; name: string };

export function exposeNames<T extends { name: string }>(lists: Array<{ upstream: string; items: T[] }>, mode: NamingMode): { items: T[]; routes: Map<string, Route> } {
  const count = new Map<string, number>();
  for (const l of lists) for (const i of new Set(l.items.map((x) => x.name))) count.set(i, (count.get(i) ?? 0) + 1);
  const items: T[] = [];
  const routes = new Map<string, Route>();
  for (const l of lists) {
    for (const item of l.items) {
      const exposed = mode === 'prefixed' || (count.get(item.name) ?? 0) > 1 ? `${l.upstream}${NAME_SEPARATOR}${item.name}` : item.name;
      // A name a prefixed name happens to equal (a tool literally called `a__b` beside upstream a's b) is
      // taken by the first; the other is left out rather than routed ambiguously.
      if (routes.has(exposed)) continue;
      routes.set(exposed, { upstream: l.upstream, name: item.name });
      items.push({ ...item, name: exposed });
    }
  }
  return { items, routes };
}
