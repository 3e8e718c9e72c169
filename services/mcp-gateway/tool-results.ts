import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { DecisionResult } from '../../schemas/decision.ts';
import { canonicalJson, sha256Digest } from '../receipts/canonical.ts';

/**
 * The tool results the gateway itself answers with (never forwarded): every one `isError: true`, with text a
 * model can act on and the facts in `_meta["countersign/decision"]` for programs. Pure.
 */

export const DECISION_META = 'countersign/decision';

const decisionFacts = (d: DecisionResult) => ({ decision_id: d.decision_id, decision: d.decision, status: d.status, reason: d.reason, matched_rule: d.matched_rule, constraints: d.constraints });

function refusal(text: string, meta: Record<string, unknown>): CallToolResult {
  return { content: [{ type: 'text', text }], isError: true, _meta: meta };
}

export function deniedResult(d: DecisionResult): CallToolResult {
  const rule = d.matched_rule ?? 'none (the tenant default)';
  return refusal(
    `Countersign denied this call; the tool was not called.\nReason: ${d.reason}\nRule: ${rule}\nDecision: ${d.decision_id}\n` +
      `To ask for an override: POST /v1/decisions/${d.decision_id}/override with {"justification": "..."} (the agent's key, or an admin), ` +
      'then retry the same call once a person has granted it.',
    { [DECISION_META]: decisionFacts(d) },
  );
}

export function stillPendingResult(d: DecisionResult, heldSec: number): CallToolResult {
  return refusal(
    `Countersign is still waiting for a person to approve this call (decision ${d.decision_id}, rule ${d.matched_rule ?? '-'}: ${d.reason}); ` +
      `held ${heldSec} s, the tool was not called. Retry the same call with the same arguments to keep waiting: it finds this decision.`,
    { [DECISION_META]: decisionFacts(d) },
  );
}

export function constraintRefusal(d: DecisionResult, violations: string[]): CallToolResult {
  return refusal(
    `Countersign allowed this call only within constraints it does not meet; the tool was not called.\n${violations.join('\n')}\nDecision: ${d.decision_id}`,
    { [DECISION_META]: decisionFacts(d), 'countersign/violations': violations },
  );
}

export function runtimeExceededResult(d: DecisionResult, seconds: number): CallToolResult {
  return refusal(`The tool ran longer than max_runtime_sec=${seconds} set by Countersign (decision ${d.decision_id}); the call was cancelled.`, { [DECISION_META]: decisionFacts(d) });
}

export function withheldResult(d: DecisionResult, violations: Array<{ rule: string; reason: string }>): CallToolResult {
  return refusal(
    `The tool ran, but Countersign withheld its result: ${violations.map((v) => `${v.rule}: ${v.reason}`).join('; ')} (decision ${d.decision_id}).`,
    { [DECISION_META]: decisionFacts(d), 'countersign/output_violations': violations },
  );
}

export function unavailableResult(detail: string): CallToolResult {
  return refusal(`Countersign could not decide on this call (${detail}); failing closed: the tool was not called. Retry later.`, { 'countersign/error': detail });
}

export function refusedRequestResult(detail: string): CallToolResult {
  return refusal(`Countersign refused the decision request (${detail}); the tool was not called.`, { 'countersign/error': detail });
}

/**
 * What the run is told the tool returned: the result itself when its JSON fits in `maxBytes`; otherwise its
 * structured content when that fits, else a digest, the size and a prefix of its text, so output rules still
 * see `output.is_error` and what fits, and the event log never holds an unbounded document.
 */
export function boundedOutput(result: CallToolResult, maxBytes: number): unknown {
  const whole = canonicalJson(result);
  if (Buffer.byteLength(whole) <= maxBytes) return result;
  const text = result.content.filter((c) => c.type === 'text').map((c) => c.text).join('\n');
  const summary: Record<string, unknown> = { truncated: true, bytes: Buffer.byteLength(whole), digest: sha256Digest(result), isError: result.isError ?? false };
  if (result.structuredContent !== undefined && Buffer.byteLength(canonicalJson(result.structuredContent)) <= maxBytes / 2) summary['structuredContent'] = result.structuredContent;
  summary['text_prefix'] = text.slice(0, Math.floor(maxBytes / 4));
  return summary;
}
