/**
 * Agent-supplied text (tool names, arguments, reasons the agent wrote) shown to approvers. Nothing in it may
 * look like something Countersign states, ping anyone, link anywhere or hide characters.
 */

// Zero-width characters, soft hyphen, word joiners, BOM, and every bidirectional control (LRE…RLO, LRI…PDI,
// LRM/RLM/ALM): they hide or reorder what the approver reads.
const INVISIBLE = /[\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180E\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0]/gu;
// Other control characters (keep tab and newline).
const CONTROL = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F]/gu;

/** Strips invisible and control characters and bounds the length. */
export function cleanText(text: string, max = 500): string {
  const cleaned = text.normalize('NFC').replace(INVISIBLE, '').replace(CONTROL, '');
  return cleaned.length > max ? `${cleaned.slice(0, max - 1)}…` : cleaned;
}

/**
 * A value as indented JSON for an approver to edit (the edit forms' prefill): every invisible, bidirectional
 * or control character written as its \\u escape, so nothing is hidden in the text and it parses back to the
 * very same value.
 */
export function visibleJson(value: unknown): string {
  return (JSON.stringify(value ?? {}, null, 2) ?? '{}').replace(INVISIBLE, escapeCodeUnit).replace(CONTROL, escapeCodeUnit);
}
const escapeCodeUnit = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** HTML text/attribute escaping. */
export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/**
 * Untrusted text for a Slack mrkdwn field (sent with verbatim: true, so Slack does not auto-link): control
 * characters escaped as Slack requires (&, <, >), so `<!channel>`, `<@U123>` and `<http://x|y>` are shown as
 * text; bare @channel/@here/@everyone broken; URLs defanged; formatting characters made inert so it cannot
 * fake bold "facts" or break out of its code block.
 */
export function slackUntrusted(text: string, max = 500): string {
  return cleanText(text, max)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/@/g, '＠')
    .replace(/!(channel|here|everyone|subteam)/gi, '¡$1')
    .replace(/:\/\//g, '[:]//')
    .replace(/`/g, 'ˋ')
    .replace(/[*_~]/g, (c) => ({ '*': '∗', _: '‗', '~': '∼' })[c]!);
}

/** Facts Countersign states (ids, rule names, timestamps it produced): escaped for mrkdwn, never trusted. */
export function slackFact(text: string, max = 300): string {
  return cleanText(text, max).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Key arguments as short `key: value` lines (the first few only). */
export function keyArguments(args: unknown, maxKeys = 8): Array<[string, string]> {
  if (!args || typeof args !== 'object' || Array.isArray(args)) return args === undefined || args === null ? [] : [['args', JSON.stringify(args)]];
  return Object.entries(args as Record<string, unknown>).slice(0, maxKeys).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v) ?? 'null']);
}
