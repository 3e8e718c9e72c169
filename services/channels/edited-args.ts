import { MAX_EDITED_ARGS_CHARS } from '../decisions/approval-edit.ts';
import { canonicalJson } from '../receipts/canonical.ts';

/** Edited arguments as an approver typed them (Slack's edit modal, the email page's form): a JSON object within the size limit, or why not. */
export function parseEditedArgs(text: string): { ok: true; args: Record<string, unknown> } | { ok: false; reason: string } {
  if (text.length > MAX_EDITED_ARGS_CHARS) return { ok: false, reason: `the arguments may be at most ${MAX_EDITED_ARGS_CHARS} characters of JSON` };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { ok: false, reason: `not valid JSON: ${(err instanceof Error ? err.message : String(err)).slice(0, 200)}` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, reason: 'the arguments must be a JSON object, like {"amount": 100}' };
  if (canonicalJson(value).length > MAX_EDITED_ARGS_CHARS) return { ok: false, reason: `the arguments may be at most ${MAX_EDITED_ARGS_CHARS} characters of JSON` };
  return { ok: true, args: value as Record<string, unknown> };
}

