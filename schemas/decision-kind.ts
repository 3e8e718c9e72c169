import { z } from 'zod';

/** The four decisions, most restrictive first (the order the combiner uses). */
export const DECISIONS = ['DENY', 'REQUIRE_APPROVAL', 'ALLOW_WITH_CONSTRAINTS', 'ALLOW'] as const;
export const Decision = z.enum(DECISIONS).describe('What the agent may do.');
export type Decision = z.infer<typeof Decision>;
