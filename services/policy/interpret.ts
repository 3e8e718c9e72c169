import type { JudgmentReading } from '../../schemas/policy.ts';
import type { CompiledPolicy, CompiledRule } from './snapshot.ts';

/**
 * The structured reading of each natural-language rule of a compiled policy: what authors see back as
 * `interpreted` when they save a policy, so a sentence is never enforced without being shown. A sentence
 * that needs judgment reads back as `{ kind: 'judgment', checklist, applies_to, ... }`.
 */
export type Interpretation = { index: number; text: string; interpreted: Omit<CompiledRule, 'text'> | JudgmentReading };

export function interpretations(policy: CompiledPolicy): Interpretation[] {
  const out: Interpretation[] = [];
  policy.rules.forEach((rule, index) => {
    if (rule.text === undefined) return;
    const { text, ...interpreted } = rule;
    if (rule.judgment !== undefined) {
      out.push({
        index,
        text,
        interpreted: {
          kind: 'judgment',
          checklist: text,
          applies_to: { ...rule.match },
          decision: 'REQUIRE_APPROVAL',
          effect: rule.judgment.effect,
          approval: { ...rule.approval },
          enforced_by: 'people, or the tenant evaluator when one is configured',
        },
      });
      return;
    }
    out.push({ index, text, interpreted });
  });
  return out;
}
