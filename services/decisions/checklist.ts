import type { JudgmentItem } from '../../schemas/decision.ts';
import type { RunView } from './run-view.ts';

/**
 * The approvers' checklist of a run: the sentences of the judgment rules that applied to its request, as its
 * evaluation recorded them. Pure (workflow code uses it for the status query's answer). Policy text is written
 * by people, not by Countersign: every channel shows it escaped, as untrusted text.
 */
export function checklistOf(view: RunView | null): JudgmentItem[] {
  return view?.evaluation?.judgment?.checklist.map((j) => ({ ...j })) ?? [];
}
