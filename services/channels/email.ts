import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import nodemailer from 'nodemailer';
import type { RoundFacts } from './facts.ts';
import { cleanText, escapeHtml, visibleJson } from './untrusted-text.ts';
import { changeText, CONTEXT_HEADINGS, EDITED_HEADING, reviewContent, roundContent, type ApprovalContent, type Line } from './approval-content.ts';
import type { ReviewFacts } from './review-facts.ts';
import { MAX_EDITED_ARGS_CHARS } from '../decisions/approval-edit.ts';

/** A single-use link token: 32 random bytes; only its SHA-256 is stored. */
export function newEmailToken(): { token: string; hash: string } {
  const token = randomBytes(32).toString('base64url');
  return { token, hash: hashEmailToken(token) };
}
export const hashEmailToken = (token: string) => createHash('sha256').update(token).digest('hex');
export const isEmailTokenShape = (token: string) => /^[A-Za-z0-9_-]{43}$/.test(token);

/** The confirmation page's CSRF token: an HMAC of the link's hash, so only a page we served has it. */
export function csrfFor(secret: Buffer, tokenHash: string): string {
  return createHmac('sha256', secret).update(`countersign-email-csrf:${tokenHash}`).digest('base64url');
}
export function csrfMatches(secret: Buffer, tokenHash: string, given: unknown): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(csrfFor(secret, tokenHash));
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

const defang = (text: string) => text.replace(/:\/\//g, '[:]//');
const pairs = (lines: Line[], max: number): Array<[string, string]> => lines.map((l): [string, string] => [cleanText(l.label, 80), cleanText(l.value, max)]);
const factLines = (c: ApprovalContent) => pairs(c.facts, 300);
const agentLines = (c: ApprovalContent) => pairs(c.agent, 300);
/** The judgment rules the approver checks (policy text: cleaned, escaped in HTML, never linked). */
const checklistLines = (c: ApprovalContent) => c.checklist.map((l) => defang(cleanText(l, 800)));
const constraintLines = (c: ApprovalContent) => c.constraints.map((l) => defang(`${cleanText(l.label, 60)}: ${cleanText(l.value, 200)}`));
const historyLines = (c: ApprovalContent) => c.history.map((l) => `${defang(cleanText(l.operation, 120))}: ${cleanText(l.fact, 200)}`);

/** The approver context as plain-text lines: constraints that will apply, the agent's recent history for the tool. */
function contextText(c: ApprovalContent, agentId: string): string[] {
  return [
    ...(c.constraints.length > 0 ? [`${CONTEXT_HEADINGS.constraints}:`, ...constraintLines(c).map((l) => `- ${l}`)] : [CONTEXT_HEADINGS.noConstraints]),
    ...(c.history.length > 0 ? [`${cleanText(CONTEXT_HEADINGS.history(agentId), 200)}:`, ...historyLines(c).map((l) => `- ${l}`)] : [CONTEXT_HEADINGS.noHistory]),
  ];
}

function contextHtml(c: ApprovalContent, agentId: string): string {
  const list = (lines: string[]) => `<ul>${lines.map((l) => `<li>${escapeHtml(l)}</li>`).join('')}</ul>`;
  return (c.constraints.length > 0 ? `<p><strong>${escapeHtml(CONTEXT_HEADINGS.constraints)}</strong></p>${list(constraintLines(c))}` : `<p>${escapeHtml(CONTEXT_HEADINGS.noConstraints)}</p>`)
    + (c.history.length > 0 ? `<p><strong>${escapeHtml(cleanText(CONTEXT_HEADINGS.history(agentId), 200))}</strong></p>${list(historyLines(c))}` : `<p>${escapeHtml(CONTEXT_HEADINGS.noHistory)}</p>`);
}

const table = (rows: Array<[string, string]>) => rows.map(([k, v]) => `<tr><th align="left">${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join('');

/** Facts and agent text as HTML: every value escaped; the agent's part boxed and labelled. */
export function factsHtml(f: RoundFacts): string {
  const c = roundContent(f);
  const checklist = checklistLines(c);
  return `<h2>Countersign approval</h2><table>${table(factLines(c))}</table>${checklist.length > 0 ? `
<p><strong>Checklist (judgment rules of the policy): check each before you approve</strong></p>
<ul>${checklist.map((l) => `<li>${escapeHtml(l)}</li>`).join('')}</ul>` : ''}
${contextHtml(c, f.agent_id)}
<p><strong>Written by the agent (unverified, shown as text):</strong></p>
<pre style="border:1px solid #999;padding:8px;white-space:pre-wrap">${agentLines(c).map(([k, v]) => `${escapeHtml(k)}: ${escapeHtml(v)}`).join('\n')}</pre>${c.edited.length > 0 ? `
<p><strong>${escapeHtml(cleanText(EDITED_HEADING(f.edited_by), 300))}</strong></p>
<pre style="border:1px solid #999;padding:8px;white-space:pre-wrap">${pairs(c.edited, 300).map(([k, v]) => `${escapeHtml(k)}: ${escapeHtml(v)}`).join('\n')}</pre>` : ''}`;
}

export function approvalEmail(f: RoundFacts, link: string, purpose: 'request' | 'escalation' | 'reminder' = 'request'): { subject: string; text: string; html: string } {
  const prefix = purpose === 'reminder' ? `Reminder (deadline ${f.deadline}): ` : purpose === 'escalation' ? 'Escalated to you: ' : '';
  const subject = cleanText(`${prefix}Approval needed: decision ${f.decision_id} (round ${f.round})`, 200);
  const c = roundContent(f);
  const text = [
    purpose === 'reminder' ? `Countersign is still waiting for your answer; the next deadline is ${f.deadline}.` : 'Countersign needs your answer.',
    '',
    ...factLines(c).map(([k, v]) => `${k}: ${v}`),
    '',
    ...(c.checklist.length > 0 ? ['Checklist (judgment rules of the policy): check each before you approve', ...checklistLines(c).map((l) => `- ${l}`), ''] : []),
    ...contextText(c, f.agent_id),
    '',
    '--- Written by the agent (unverified) ---',
    ...agentLines(c).map(([k, v]) => `${defang(k)}: ${defang(v)}`),
    '--- end of agent text ---',
    ...(c.edited.length > 0 ? ['', cleanText(EDITED_HEADING(f.edited_by), 300), ...pairs(c.edited, 300).map(([k, v]) => `${defang(k)}: ${defang(v)}`)] : []),
    '',
    `Open this link to review and answer (it works once, for you only, until ${f.final_deadline}):`,
    link,
  ].join('\n');
  const html = `<!doctype html><html><body>${factsHtml(f)}<p><a href="${escapeHtml(link)}">Review and answer</a> (works once, for you only, until ${escapeHtml(f.final_deadline)}).</p></body></html>`;
  return { subject, text, html };
}

/**
 * A digest: the rounds held back by the per-approver cap, in one mail, each with its own single-use link.
 * Facts and agent text as in a single approval mail (escaped, apart, plain text and HTML).
 */
export function digestEmail(items: Array<{ facts: RoundFacts; link: string }>): { subject: string; text: string; html: string } {
  const subject = `Countersign: ${items.length} approval request${items.length === 1 ? '' : 's'} waiting for you (digest)`;
  const intro = 'You reached the hourly notification limit; these requests were held back and are grouped here. Each link works once, for you only, until its deadline.';
  const text = [
    intro,
    ...items.map(({ facts: f, link }) => ({ f, c: roundContent(f), link })).flatMap(({ f, c, link }) => [
      '',
      '========',
      ...factLines(c).map(([k, v]) => `${k}: ${v}`),
      ...contextText(c, f.agent_id),
      '--- Written by the agent (unverified) ---',
      ...agentLines(c).map(([k, v]) => `${defang(k)}: ${defang(v)}`),
      '--- end of agent text ---',
      ...(c.checklist.length > 0 ? ['Checklist (judgment rules of the policy): check each before you approve', ...checklistLines(c).map((l) => `- ${l}`)] : []),
      `Review and answer: ${link}`,
    ]),
  ].join('\n');
  const html = `<!doctype html><html><body><p>${escapeHtml(intro)}</p>${items.map(({ facts: f, link }) => `<hr>${factsHtml(f)}<p><a href="${escapeHtml(link)}">Review and answer</a></p>`).join('')}</body></html>`;
  return { subject, text, html };
}

/** A four-eyes review's facts as HTML (Countersign's record of the change, every value escaped). */
export function reviewFactsHtml(r: ReviewFacts): string {
  return `<h2>Countersign: policy change to review (four eyes)</h2><table>${table(factLines(reviewContent(r)))}</table>
<p>A second admin approves or rejects this change; whoever asked for it or wrote it cannot.</p>`;
}

export function reviewEmail(r: ReviewFacts, link: string): { subject: string; text: string; html: string } {
  const c = reviewContent(r);
  const subject = cleanText(`Review needed: ${changeText(r)}`, 200);
  const text = [
    'Countersign needs a second admin to review a policy change.',
    '',
    ...factLines(c).map(([k, v]) => `${k}: ${v}`),
    '',
    `Open this link to review and answer (it works once, for you only, until ${r.deadline}):`,
    link,
  ].join('\n');
  const html = `<!doctype html><html><body>${reviewFactsHtml(r)}<p><a href="${escapeHtml(link)}">Review and answer</a> (works once, for you only, until ${escapeHtml(r.deadline)}).</p></body></html>`;
  return { subject, text, html };
}

export type Mailer = { send(to: string, mail: { subject: string; text: string; html: string }): Promise<void> };

export function smtpMailer(smtpUrl: string, from: string): Mailer {
  const transport = nodemailer.createTransport(smtpUrl);
  return {
    async send(to, mail) {
      await transport.sendMail({ from, to, subject: mail.subject, text: mail.text, html: mail.html });
    },
  };
}

/**
 * The confirmation page (GET/HEAD): facts, two buttons, the CSRF token. Showing it answers nothing. Where the
 * round allows edits, a second form on the same link approves changed arguments (JSON, prefilled with the
 * round's); `edit` re-shows a refused edit with the reason, so the approver can correct it.
 */
export function confirmationPage(f: RoundFacts, action: string, csrf: string, edit?: { text: string; error: string }): string {
  const hidden = `<input type="hidden" name="csrf" value="${escapeHtml(csrf)}">
<input type="hidden" name="decision_id" value="${escapeHtml(f.decision_id)}">
<input type="hidden" name="round" value="${f.round}">`;
  const editForm = f.edits_allowed ? `
<h3>Approve with edit</h3>
<p>Change the arguments, then approve. The edit counts only if the policy judges it no looser than what was asked (same rule or a stricter one, constraints no wider).</p>
${edit ? `<p role="alert"><strong>Not counted:</strong> ${escapeHtml(cleanText(edit.error, 500))}</p>` : ''}
<form method="post" action="${escapeHtml(action)}">
${hidden}
<input type="hidden" name="args_digest" value="${escapeHtml(f.args_digest ?? '')}">
<p><label>Arguments (JSON)<br><textarea name="edited_args" rows="12" cols="80" maxlength="${MAX_EDITED_ARGS_CHARS}">${escapeHtml(edit ? edit.text.replace(/[^\n\t\P{C}]/gu, '') : visibleJson(f.edited_args ?? f.untrusted.args))}</textarea></label></p>
<p><label>Comment (optional) <input type="text" name="comment" maxlength="500"></label></p>
<button type="submit" name="verdict" value="approve_edit">Approve with edit</button>
</form>` : '';
  return `<!doctype html><html><head><meta charset="utf-8"><meta name="referrer" content="no-referrer"><title>Countersign approval</title></head><body>
${factsHtml(f)}
<form method="post" action="${escapeHtml(action)}">
${hidden}
<p><label>Comment (optional) <input type="text" name="comment" maxlength="500"></label></p>
<button type="submit" name="verdict" value="approve">Approve</button>
<button type="submit" name="verdict" value="reject">Reject</button>
</form>${editForm}</body></html>`;
}

/** A review's confirmation page: the change, Approve and Reject, the CSRF token. Showing it answers nothing. */
export function reviewConfirmationPage(r: ReviewFacts, action: string, csrf: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><meta name="referrer" content="no-referrer"><title>Countersign review</title></head><body>
${reviewFactsHtml(r)}
<form method="post" action="${escapeHtml(action)}">
<input type="hidden" name="csrf" value="${escapeHtml(csrf)}">
<input type="hidden" name="decision_id" value="${escapeHtml(r.review_id)}">
<input type="hidden" name="round" value="1">
<p><label>Comment (optional) <input type="text" name="comment" maxlength="500"></label></p>
<button type="submit" name="verdict" value="approve">Approve</button>
<button type="submit" name="verdict" value="reject">Reject</button>
</form></body></html>`;
}

export function messagePage(title: string, message: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body><h2>${escapeHtml(title)}</h2><p>${escapeHtml(message)}</p></body></html>`;
}
