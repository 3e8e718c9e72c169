import { z } from 'zod';

/** The four decisions, most restrictive first (the order the combiner uses). */
export const DECISIONS = ['DENY', 'REQUIRE_APPROVAL', 'ALLOW_WITH_CONSTRAINTS', 'ALLOW'] as const;
export const Decision = z.enum(DECISIONS).describe('What the agent may do.');
export type Decision = z.infer<typeof Decision>;

const RANK = Object.fromEntries(DECISIONS.map((d, i) => [d, i])) as Record<Decision, number>;

/** The one ranking of decisions: 0 is the most restrictive (DENY), as the combiner and every comparison use it. */
export function restrictiveness(d: Decision): number {
  return RANK[d];
}
