import type { FastifyInstance, FastifyReply } from 'fastify';
import { loadAttestationSecret } from '../../decisions/attestation.ts';
import { answerEmail, answerSlackClick, claimSlackInteraction, parseSlackInteraction, readEmailToken } from '../../channels/answers.ts';
import { confirmationPage, csrfMatches, csrfFor, messagePage } from '../../channels/email.ts';
import { loadRoundFacts } from '../../channels/facts.ts';
import { slackClient } from '../../channels/slack.ts';
import { verifySlackSignature } from '../../channels/slack-signature.ts';
import { CountersignError } from '../../errors.ts';
import type { ApiDeps } from '../server.ts';

const FORM_LIMIT_BYTES = 64 * 1024;

function html(reply: FastifyReply, status: number, body: string): string {
  void reply.status(status)
    .type('text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .header('referrer-policy', 'no-referrer')
    .header('x-frame-options', 'DENY')
    .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'");
  return body;
}

/**
 * Slack's interactivity URL and the email confirmation pages. Not authenticated by API key: Slack requests
 * by their signature, email answers by a single-use link plus the page's CSRF token.
 */
export function registerChannelRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const { config } = deps;
  let secret: Buffer | null = null;
  const messages = { db: deps.db, temporal: deps.temporal, secret: () => (secret ??= loadAttestationSecret(config.keysDir, config.COUNTERSIGN_ATTESTATION_SECRET)) };
  const slack = config.COUNTERSIGN_SLACK_BOT_TOKEN ? slackClient({ botToken: config.COUNTERSIGN_SLACK_BOT_TOKEN, apiUrl: config.COUNTERSIGN_SLACK_API_URL }) : undefined;

  void app.register(async (scope) => {
    // The signature covers the raw body: keep it as the exact string received.
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: FORM_LIMIT_BYTES }, (_req, body, done) => done(null, body));

    scope.post('/v1/slack/interactions', { schema: { tags: ['channels'], summary: "Slack's interactivity URL: verified by Slack's request signature, not an API key", security: [] } }, async (req, reply) => {
      const raw = typeof req.body === 'string' ? req.body : '';
      const check = verifySlackSignature(config.COUNTERSIGN_SLACK_SIGNING_SECRET, { timestamp: req.headers['x-slack-request-timestamp'], signature: req.headers['x-slack-signature'] }, raw);
      if (!check.ok) throw new CountersignError('unauthorized', `Slack request refused: ${check.reason}`);
      const action = parseSlackInteraction(raw);
      if (!action) return reply.status(200).send({ ok: true, handled: false });
      const claimed = await claimSlackInteraction(deps.db, raw, action);
      if (!claimed) return reply.status(200).send({ ok: true, handled: false });
      if (!claimed.first) return reply.status(200).send({ ok: true, handled: false, replay: true });
      // Acknowledge at once (Slack wants an answer within 3 s); the answer and the message update follow.
      void answerSlackClick(deps.db, messages, slack, claimed.message, action).catch((err: unknown) => req.log.error({ err }, 'slack answer failed'));
      return reply.status(200).send({ ok: true, handled: true });
    });

    const page = async (token: string, reply: FastifyReply) => {
      const found = await readEmailToken(deps.db, token);
      if ('refused' in found) return html(reply, 404, messagePage('Link not usable', found.refused));
      const facts = await loadRoundFacts(deps.db, found.row.tenant_id, found.row.decision_id, found.row.round);
      if (!facts) return html(reply, 404, messagePage('Link not usable', 'this link is not valid'));
      if (facts.status !== 'open') return html(reply, 409, messagePage('Round closed', `This approval round is ${facts.status}; there is nothing to answer.`));
      return html(reply, 200, confirmationPage(facts, `/v1/email-approvals/${token}`, csrfFor(messages.secret(), found.row.token_hash)));
    };

    // GET (and the HEAD Fastify derives from it) only shows the page: link scanners and previews answer nothing.
    scope.get<{ Params: { token: string } }>('/v1/email-approvals/:token', { schema: { tags: ['channels'], summary: 'The confirmation page of an emailed approval link (GET and HEAD never answer)', security: [] } }, async (req, reply) => page(req.params.token, reply));

    scope.post<{ Params: { token: string } }>('/v1/email-approvals/:token', { schema: { tags: ['channels'], summary: 'Answer from the confirmation page (form POST with its CSRF token)', security: [] } }, async (req, reply) => {
      if (typeof req.body !== 'string') return html(reply, 415, messagePage('Not answered', 'answer from the confirmation page'));
      const form = new URLSearchParams(req.body);
      const found = await readEmailToken(deps.db, req.params.token);
      if ('refused' in found) return html(reply, 404, messagePage('Not answered', found.refused));
      const { row } = found;
      if (!csrfMatches(messages.secret(), row.token_hash, form.get('csrf'))) return html(reply, 403, messagePage('Not answered', 'the form is missing its CSRF token: open the link and answer from that page'));
      const origin = req.headers.origin;
      if (origin && origin !== 'null' && origin !== new URL(config.publicUrl).origin) return html(reply, 403, messagePage('Not answered', 'the answer came from another site'));
      if (form.get('decision_id') !== row.decision_id || form.get('round') !== String(row.round)) return html(reply, 409, messagePage('Not answered', 'this link is for another decision or round'));
      const verdict = form.get('verdict');
      if (verdict !== 'approve' && verdict !== 'reject') return html(reply, 400, messagePage('Not answered', 'choose Approve or Reject'));
      const comment = (form.get('comment') ?? '').slice(0, 500) || undefined;
      const outcome = await answerEmail(deps.db, messages, row, verdict, comment);
      if (!outcome.counted) return html(reply, 409, messagePage('Not counted', outcome.reason));
      return html(reply, 200, messagePage('Answer counted', `${verdict === 'approve' ? 'Approved' : 'Rejected'} by ${outcome.approver}.`));
    });
  });
}
