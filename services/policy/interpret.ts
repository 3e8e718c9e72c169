import type { CompiledRule } from './snapshot.ts';
import type { CompiledPolicy } from './snapshot.ts';

/**
 * The structured reading of each natural-language rule of a compiled policy: what authors see back as
 * `interpreted` when they save a policy, so a sentence is never enforced without being shown.
 */
export type Interpretation = { index: number; text: string; interpreted: Omit<CompiledRule, 'text'> };

export function interpretations(policy: CompiledPolicy): Interpretation[] {
  const out: Interpretation[] = [];
  policy.rules.forEach((rule, index) => {
    if (rule.text === undefined) return;
    const { text, ...interpreted } = rule;
    out.push({ index, text, interpreted });
  });
  return out;
}
