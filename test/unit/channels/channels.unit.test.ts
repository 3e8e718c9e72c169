import { describe, expect, it } from 'vitest';
import { parseSlackInteraction } from '../../../services/channels/answers.ts';
import { csrfFor, csrfMatches, hashEmailToken, isEmailTokenShape, newEmailToken } from '../../../services/channels/email.ts';
import { SLACK_MAX_SKEW_SECONDS, slackSignature, verifySlackSignature } from '../../../services/channels/slack-signature.ts';
import { cleanText, escapeHtml, slackUntrusted } from '../../../services/channels/untrusted-text.ts';

const SECRET = 'unit-signing-secret';
const body = new URLSearchParams({ payload: JSON.stringify({ type: 'block_actions', team: { id: 'T1' }, user: { id: 'U1' }, actions: [{ action_id: 'countersign_approve', value: 'r'.repeat(24) }] }) }).toString();
const at = (ts: number) => ({ timestamp: String(ts), signature: slackSignature(SECRET, String(ts), body) });

describe('Slack v0 signature', () => {
  const now = 1_800_000_000;
  it('accepts a correct signature up to exactly 5 minutes off either way, and refuses one second more', () => {
    expect(verifySlackSignature(SECRET, at(now), body, now * 1000).ok).toBe(true);
    expect(verifySlackSignature(SECRET, at(now - SLACK_MAX_SKEW_SECONDS), body, now * 1000).ok).toBe(true);
    expect(verifySlackSignature(SECRET, at(now + SLACK_MAX_SKEW_SECONDS), body, now * 1000).ok).toBe(true);
    expect(verifySlackSignature(SECRET, at(now - SLACK_MAX_SKEW_SECONDS - 1), body, now * 1000).ok).toBe(false);
    expect(verifySlackSignature(SECRET, at(now + SLACK_MAX_SKEW_SECONDS + 1), body, now * 1000).ok).toBe(false);
  });
  it('refuses wrong secrets, every flipped signature bit, missing headers, changed bodies and no configured secret', () => {
    const good = at(now);
    let refused = 0;
    const hex = good.signature.slice(3);
    for (let i = 0; i < hex.length; i++) {
      for (const bit of [1, 2, 4, 8]) {
        const flipped = hex.slice(0, i) + (parseInt(hex[i]!, 16) ^ bit).toString(16) + hex.slice(i + 1);
        if (!verifySlackSignature(SECRET, { ...good, signature: `v0=${flipped}` }, body, now * 1000).ok) refused++;
      }
    }
    expect(refused).toBe(hex.length * 4);
    expect(verifySlackSignature('other', good, body, now * 1000).ok).toBe(false);
    expect(verifySlackSignature(SECRET, { signature: good.signature }, body, now * 1000).ok).toBe(false);
    expect(verifySlackSignature(SECRET, { timestamp: good.timestamp }, body, now * 1000).ok).toBe(false);
    expect(verifySlackSignature(SECRET, { ...good, signature: good.signature.toUpperCase() }, body, now * 1000).ok).toBe(false);
    expect(verifySlackSignature(SECRET, good, `${body}&x=1`, now * 1000).ok).toBe(false);
    expect(verifySlackSignature(SECRET, good, body.replace(/%22/g, '"'), now * 1000).ok).toBe(false);
    expect(verifySlackSignature(undefined, good, body, now * 1000).ok).toBe(false);
    expect(verifySlackSignature(SECRET, { ...good, timestamp: `${good.timestamp}.5` }, body, now * 1000).ok).toBe(false);
  });
});

describe('Slack interaction payloads', () => {
  it('reads only a single click on one of our buttons', () => {
    expect(parseSlackInteraction(body)).toEqual({ teamId: 'T1', userId: 'U1', verdict: 'approve', ref: 'r'.repeat(24) });
    // Reject opens the reason modal (it needs Slack's trigger id); the modal's submission carries the reason.
    const reject = (extra: Record<string, unknown>) => new URLSearchParams({ payload: JSON.stringify({ type: 'block_actions', team: { id: 'T1' }, user: { id: 'U1' }, actions: [{ action_id: 'countersign_reject', value: 'r'.repeat(24) }], ...extra }) }).toString();
    expect(parseSlackInteraction(reject({ trigger_id: 'tr1' }))).toEqual({ teamId: 'T1', userId: 'U1', verdict: 'reject', ref: 'r'.repeat(24), triggerId: 'tr1' });
    expect(parseSlackInteraction(reject({}))).toBeNull();
    const submission = (view: Record<string, unknown>) => new URLSearchParams({ payload: JSON.stringify({ type: 'view_submission', team: { id: 'T1' }, user: { id: 'U1' }, view }) }).toString();
    const values = (v: unknown) => ({ values: { reason: { reason: { value: v } } } });
    expect(parseSlackInteraction(submission({ callback_id: 'countersign_reject_reason', private_metadata: 'r'.repeat(24), state: values('  too risky ') })))
      .toEqual({ teamId: 'T1', userId: 'U1', verdict: 'reject', ref: 'r'.repeat(24), comment: 'too risky' });
    for (const view of [
      { callback_id: 'other', private_metadata: 'r'.repeat(24), state: values('x') },
      { callback_id: 'countersign_reject_reason', private_metadata: 'bad ref', state: values('x') },
      { callback_id: 'countersign_reject_reason', private_metadata: 'r'.repeat(24), state: values('   ') },
      { callback_id: 'countersign_reject_reason', private_metadata: 'r'.repeat(24), state: values(5) },
    ]) expect(parseSlackInteraction(submission(view))).toBeNull();
    for (const bad of ['', 'payload=', 'payload=%7B', 'payload=' + encodeURIComponent(JSON.stringify({ type: 'view_submission' })), body.replace('countersign_approve', 'other'), body.replace('rrrrrrrr', 'r<>r!rrr')]) {
      expect(parseSlackInteraction(bad)).toBeNull();
    }
  });
});

describe('untrusted text', () => {
  const hostile = '<!channel> <!here|here> <@U0BOSS> <http://evil.example|bank> https://evil.example @everyone \u200b\u200c\u200d\u2060\ufeff\u202a\u202b\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f *bold* _it_ `code` ~s~ &amp; \u0007';
  it('Slack: escapes &, <, >; no mentions, links, invisible or bidi characters, no formatting', () => {
    const s = slackUntrusted(hostile);
    expect(s).not.toMatch(/[<>]|<!|@everyone|:\/\/|[\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\u0007]|[*_`~]/);
    expect(s).toContain('&lt;¡channel&gt;');
    expect(s).toContain('&amp;amp;');
  });
  it('HTML: every markup character escaped', () => {
    expect(escapeHtml('<script>"x"&\'y\'</script>')).toBe('&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/script&gt;');
    expect(cleanText('a\u202eb\u200bc')).toBe('abc');
    expect(cleanText('x'.repeat(600), 10)).toHaveLength(10);
  });
});

describe('email link tokens', () => {
  it('are 256-bit random, stored as SHA-256, with a CSRF token bound to the link', () => {
    const a = newEmailToken();
    const b = newEmailToken();
    expect(a.token).not.toBe(b.token);
    expect(isEmailTokenShape(a.token)).toBe(true);
    expect(a.hash).toBe(hashEmailToken(a.token));
    expect(a.hash).toMatch(/^[0-9a-f]{64}$/);
    const secret = Buffer.alloc(32, 7);
    expect(csrfMatches(secret, a.hash, csrfFor(secret, a.hash))).toBe(true);
    expect(csrfMatches(secret, b.hash, csrfFor(secret, a.hash))).toBe(false);
    expect(csrfMatches(Buffer.alloc(32, 8), a.hash, csrfFor(secret, a.hash))).toBe(false);
    expect(csrfMatches(secret, a.hash, undefined)).toBe(false);
    expect(csrfMatches(secret, a.hash, '')).toBe(false);
  });
});
