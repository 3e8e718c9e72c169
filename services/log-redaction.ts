import type { FastifyRequest } from 'fastify';

/**
 * What the API's request log may say about a request. Emailed approval links carry their secret in the path,
 * so the path is logged with it replaced; query values whose names suggest a secret are dropped too. Headers
 * and bodies are never logged (the Authorization header, Slack's signature, CSRF tokens and API keys in
 * bodies or answers stay out by construction), and `scrubSecrets` removes any key or link that still reaches a
 * line (an error message quoting a URL, say).
 */
export function redactUrl(url: string): string {
  const q = url.indexOf('?');
  const path = (q === -1 ? url : url.slice(0, q)).replace(/^(\/v1\/email-approvals\/)[^/]+/, '$1[redacted]');
  if (q === -1) return path;
  const params = url.slice(q + 1).split('&').map((pair) => {
    const name = pair.split('=')[0] ?? '';
    return /token|key|secret|signature|csrf|password|auth/i.test(decodeURIComponentSafe(name)) ? `${name}=[redacted]` : pair;
  });
  return `${path}?${params.join('&')}`;
}

const decodeURIComponentSafe = (s: string) => {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
};

/** Fastify's request serializer with the URL redacted. */
export function serializeRequest(req: FastifyRequest): Record<string, unknown> {
  return { method: req.method, url: redactUrl(req.url), host: req.host, remoteAddress: req.ip, remotePort: req.socket?.remotePort };
}

const API_KEY = /cs_[a-z0-9]{12}_[A-Za-z0-9_-]{43}/g;
const EMAIL_LINK = /(\/v1\/email-approvals\/)[A-Za-z0-9_%-]+/g;
const BEARER = /(Bearer\s+)[^\s"\\]+/gi;
const SLACK_TOKEN = /xox[abpr]-[A-Za-z0-9-]+/g;
// user:password@ in any URL (a Postgres, SMTP or Kafka URL quoted by an error message).
const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/)[^\s/@:"]+:[^\s/@"]+@/gi;

/** Removes API keys, emailed link tokens, bearer credentials, Slack tokens and URL passwords from a finished log line. */
export function scrubSecrets(line: string): string {
  return line.replace(API_KEY, 'cs_[redacted]').replace(EMAIL_LINK, '$1[redacted]').replace(BEARER, '$1[redacted]')
    .replace(SLACK_TOKEN, 'xox?-[redacted]').replace(URL_CREDENTIALS, '$1[redacted]@');
}
