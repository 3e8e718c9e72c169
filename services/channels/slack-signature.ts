import { createHmac, timingSafeEqual } from 'node:crypto';

/** Slack's tolerance: a request signed more than this far from our clock (either way) is refused. */
export const SLACK_MAX_SKEW_SECONDS = 5 * 60;

export type SignatureCheck = { ok: true } | { ok: false; reason: string };

export function slackSignature(secret: string, timestamp: string, rawBody: string): string {
  return `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${rawBody}`).digest('hex')}`;
}

/**
 * Verifies Slack's v0 request signature: HMAC-SHA256 of `v0:{timestamp}:{raw body}` with the signing secret,
 * compared in constant time, and a timestamp within five minutes of now either way.
 */
export function verifySlackSignature(secret: string | undefined, headers: { timestamp?: unknown; signature?: unknown }, rawBody: string, nowMs = Date.now()): SignatureCheck {
  if (!secret) return { ok: false, reason: 'Slack is not configured (no signing secret)' };
  const { timestamp, signature } = headers;
  if (typeof timestamp !== 'string' || !/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'missing or malformed X-Slack-Request-Timestamp' };
  if (typeof signature !== 'string' || !/^v0=[0-9a-f]{64}$/.test(signature)) return { ok: false, reason: 'missing or malformed X-Slack-Signature' };
  const skew = Math.abs(Math.floor(nowMs / 1000) - Number(timestamp));
  if (skew > SLACK_MAX_SKEW_SECONDS) return { ok: false, reason: `timestamp is ${skew} s away from now (limit ${SLACK_MAX_SKEW_SECONDS} s)` };
  const expected = Buffer.from(slackSignature(secret, timestamp, rawBody));
  const given = Buffer.from(signature);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return { ok: false, reason: 'signature does not match' };
  return { ok: true };
}
