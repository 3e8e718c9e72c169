import { z } from 'zod';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { ProblemSchema } from '../../../schemas/api.ts';
import { readAttestationSecret } from '../../decisions/attestation.ts';
import { answerEmail, answerSlackClick, claimSlackInteraction, findSlackMessage, logAnswer, openRejectReason, parseSlackInteraction, processSlackInbox, readEmailToken, SLACK_INBOX_LEASE_SECONDS, spendEmailLink } from '../../channels/answers.ts';
import { bindSlackTeam, boundSlackTeam } from '../../channels/slack-workspaces.ts';
import { confirmationPage, csrfMatches, csrfFor, messagePage } from '../../channels/email.ts';
import { loadRoundFacts } from '../../channels/facts.ts';
import { slackClient } from '../../channels/slack.ts';
import { verifySlackSignature } from '../../channels/slack-signature.ts';
import { CountersignError } from '../../errors.ts';
import { authenticated, principalOf, type ApiDeps } from '../server.ts';

const FORM_LIMIT_BYTES = 64 * 1024;
/**
 * Only the message of an error is logged: a Slack client error can carry the request it failed on, and with
 * it the bot token in its headers.
 */
const errorMessage = (err: unknown) => (err instanceof Error ? err.message : String(err)).slice(0, 500);
const problems = { 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema, 409: ProblemSchema, 429: ProblemSchema, 503: ProblemSchema };
export const SlackWorkspaceBody = z.strictObject({ team_id: z.string().regex(/^T[A-Z0-9]{1,31}$/, 'a Slack team id, such as T0123ABCD') });
const SlackWorkspace = z.strictObject({ team_id: z.string().nullable(), bound_at: z.string().nullable().optional() });

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
  const messages = { db: deps.db, temporal: deps.temporal, secret: () => (secret ??= readAttestationSecret(config.keysDir, config.COUNTERSIGN_ATTESTATION_SECRET)) };
  const slack = config.COUNTERSIGN_SLACK_BOT_TOKEN ? slackClient({ botToken: config.COUNTERSIGN_SLACK_BOT_TOKEN, apiUrl: config.COUNTERSIGN_SLACK_API_URL }) : undefined;

  void app.register(async (scope) => {
    // The signature covers the raw body: keep it as the exact string received.
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: FORM_LIMIT_BYTES }, (_req, body, done) => done(null, body));

    scope.post('/v1/slack/interactions', { schema: { tags: ['channels'], summary: "Slack's interactivity URL: verified by Slack's request signature, not an API key", security: [] } }, async (req, reply) => {
      const raw = typeof req.body === 'string' ? req.body : '';
      const check = verifySlackSignature(config.COUNTERSIGN_SLACK_SIGNING_SECRET, { timestamp: req.headers['x-slack-request-timestamp'], signature: req.headers['x-slack-signature'] }, raw);
      if (!check.ok) {
        // Anyone can send these: nothing is written for them (a metric counts them), so a flood fills no table.
        app.countChannelRefusal('slack', 'signature');
        throw new CountersignError('unauthorized', `Slack request refused: ${check.reason}`);
      }
      const action = parseSlackInteraction(raw);
      if (!action) {
        await logAnswer(deps.db, { tenantId: null, channel: 'slack', counted: false, reason: 'not a click on a Countersign button' });
        return reply.status(200).send({ ok: true, handled: false });
      }
      // Slack closes a submitted modal on an empty 200; clicks get a small JSON acknowledgement.
      const ack = (body: Record<string, unknown>) => (action.comment !== undefined ? reply.status(200).send() : reply.status(200).send(body));
      if (action.triggerId) {
        // Reject asks for a reason first: the modal opens (Slack's trigger lives 3 s), its submission is the answer.
        const message = await findSlackMessage(deps.db, action.ref);
        if (!message) {
          await logAnswer(deps.db, { tenantId: null, channel: 'slack', actor: `slack:${action.teamId}/${action.userId}`, verdict: action.verdict, counted: false, reason: 'unknown message' });
          return ack({ ok: true, handled: false });
        }
        void openRejectReason(deps.db, slack, message, action).catch((err: unknown) => req.log.error({ error: errorMessage(err) }, 'slack reject modal failed'));
        return ack({ ok: true, handled: true, asks: 'reason' });
      }
      const claimed = await claimSlackInteraction(deps.db, raw, action);
      if (!claimed) {
        await logAnswer(deps.db, { tenantId: null, channel: 'slack', actor: `slack:${action.teamId}/${action.userId}`, verdict: action.verdict, counted: false, reason: 'unknown message' });
        return ack({ ok: true, handled: false });
      }
      const { message } = claimed;
      if (!claimed.first) {
        await logAnswer(deps.db, { tenantId: message.tenant_id, channel: 'slack', decisionId: message.decision_id, round: message.round, actor: `slack:${action.teamId}/${action.userId}`, verdict: action.verdict, counted: false, reason: 'replayed payload' });
        return ack({ ok: true, handled: false, replay: true });
      }
      // The click is stored (the inbox) before Slack is acknowledged, within its 3 s; the answer and the message
      // update follow. If this process dies in between, processSlackInbox picks the click up at the next start.
      if (config.COUNTERSIGN_CRASH_AT === 'after-slack-ack') {
        // Test only: die right after Slack has its acknowledgement, before any of the work.
        reply.raw.once('finish', () => process.kill(process.pid, 'SIGKILL'));
        return ack({ ok: true, handled: true });
      }
      void answerSlackClick(deps.db, messages, slack, message, action, claimed.bodyHash).catch((err: unknown) => req.log.error({ error: errorMessage(err) }, 'slack answer failed; the inbox retries it'));
      return ack({ ok: true, handled: true });
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
      const form = new URLSearchParams(typeof req.body === 'string' ? req.body : '');
      const found = await readEmailToken(deps.db, req.params.token);
      const verdict = form.get('verdict');
      const refuse = async (status: number, title: string, reason: string, row = found.row) => {
        // A link that does not exist ties the request to nothing: counted by a metric, never written (anyone can
        // send these). Refusals on a real link are recorded against its decision.
        if (!row) {
          app.countChannelRefusal('email', 'unknown_link');
          return html(reply, status, messagePage(title, reason));
        }
        await logAnswer(deps.db, { tenantId: row.tenant_id, channel: 'email', decisionId: row.decision_id, round: row.round, actor: `email:${row.approver_id}`, verdict, counted: false, reason });
        return html(reply, status, messagePage(title, reason));
      };
      if (typeof req.body !== 'string') return refuse(415, 'Not answered', 'answer from the confirmation page (a form POST)');
      if ('refused' in found) return refuse(404, 'Not answered', found.refused);
      const { row } = found;
      // Without the page's CSRF token, or from another site, it is not an answer from our page: refused, and the
      // link stays usable (a scanner or a forged form must not be able to burn it).
      if (!csrfMatches(messages.secret(), row.token_hash, form.get('csrf'))) return refuse(403, 'Not answered', 'the form is missing its CSRF token: open the link and answer from that page');
      const origin = req.headers.origin;
      if (origin && origin !== 'null' && origin !== new URL(config.publicUrl).origin) return refuse(403, 'Not answered', 'the answer came from another site');
      // From here on this is the link's one use, whatever becomes of the answer.
      if (!(await spendEmailLink(deps.db, row, verdict))) return refuse(404, 'Not answered', 'this link has already been used or has expired');
      if (form.get('decision_id') !== row.decision_id || form.get('round') !== String(row.round)) return refuse(409, 'Not answered', 'this link is for another decision or round (the link is now used)');
      if (verdict !== 'approve' && verdict !== 'reject') return refuse(400, 'Not answered', 'choose Approve or Reject (the link is now used)');
      const comment = (form.get('comment') ?? '').slice(0, 500) || undefined;
      const outcome = await answerEmail(deps.db, messages, row, verdict, comment);
      if (!outcome.counted) return refuse(409, 'Not counted', outcome.reason);
      await logAnswer(deps.db, { tenantId: row.tenant_id, channel: 'email', decisionId: row.decision_id, round: row.round, actor: `email:${row.approver_id}`, verdict, counted: true, reason: 'counted' });
      return html(reply, 200, messagePage('Answer counted', `${verdict === 'approve' ? 'Approved' : 'Rejected'} by ${outcome.approver}.`));
    });
  });

  // Clicks stored but never finished (an API that died after acknowledging them): at start, then regularly.
  let inbox: ReturnType<typeof setInterval> | null = null;
  let sweeping: Promise<unknown> = Promise.resolve();
  const sweep = () => {
    sweeping = sweeping.then(() => processSlackInbox(deps.db, messages, slack)).catch((err: unknown) => app.log.error({ error: errorMessage(err) }, 'slack inbox sweep failed'));
  };
  app.addHook('onReady', async () => {
    sweep();
    inbox = setInterval(sweep, SLACK_INBOX_LEASE_SECONDS * 1000);
    inbox.unref();
  });
  app.addHook('onClose', async () => {
    if (inbox) clearInterval(inbox);
    await sweeping;
  });

  // The Slack workspace this tenant's approvers answer from (team id only: no secret is stored or returned).
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get('/v1/slack/workspace', {
    onRequest: authenticated(deps, ['admin']),
    schema: { tags: ['channels'], summary: "The Slack workspace (team id) bound to the caller's tenant, or null", response: { 200: SlackWorkspace, ...problems } },
  }, async (req) => ({ team_id: await boundSlackTeam(deps.db, principalOf(req).tenant_id) }));
  r.put('/v1/slack/workspace', {
    onRequest: authenticated(deps, ['admin']),
    schema: { tags: ['channels'], summary: "Bind the caller's tenant to a Slack workspace: clicks from any other workspace are refused", body: SlackWorkspaceBody, response: { 200: SlackWorkspace, ...problems } },
  }, async (req) => {
    const p = principalOf(req);
    const res = await bindSlackTeam(deps.db, p.tenant_id, req.body.team_id, p.id);
    if (!res.ok) throw new CountersignError('conflict', 'that Slack workspace is bound to another tenant');
    return { team_id: res.team_id, bound_at: res.bound_at };
  });
}
