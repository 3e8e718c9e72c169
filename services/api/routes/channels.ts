import { z } from 'zod';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { ProblemSchema } from '../../../schemas/api.ts';
import { readAttestationSecret } from '../../decisions/attestation.ts';
import {
  answerEmail, answerSlackClick, checkEditSubmission, claimSlackInteraction, emailEditRefusal, findSlackMessage, logAnswer, openAnswerModal, parseSlackInteraction,
  processSlackInbox, readEmailToken, SLACK_INBOX_LEASE_SECONDS, spendEmailLink, type AnswerOutcome, type ChannelEdit,
} from '../../channels/answers.ts';
import { parseEditedArgs } from '../../channels/edited-args.ts';
import { isReviewPurpose, loadReviewFacts, reviewOwner } from '../../channels/review-facts.ts';
import { bindSlackTeam, boundSlackTeam } from '../../channels/slack-workspaces.ts';
import { confirmationPage, csrfMatches, csrfFor, messagePage, reviewConfirmationPage } from '../../channels/email.ts';
import { loadRoundFacts } from '../../channels/facts.ts';
import { slackClient } from '../../channels/slack.ts';
import { verifySlackSignature } from '../../channels/slack-signature.ts';
import { CountersignError } from '../../errors.ts';
import { authenticated, principalOf, type ApiDeps } from '../server.ts';

const FORM_LIMIT_BYTES = 64 * 1024;
/** How long a modal submission waits for its answer before Slack (3 s) is answered anyway; the message then shows the outcome. */
const MODAL_ANSWER_WAIT_MS = 2_500;
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
      const actor = `slack:${action.teamId}/${action.userId}`;
      if (action.submitted) {
        // Approve with edit, submitted: answered in the modal itself (a refusal is a field error the approver can
        // correct), within Slack's 3 s when the answer is quick, else closed and shown on the message.
        const fieldError = (reason: string) => reply.status(200).send({ response_action: 'errors', errors: { args: reason.slice(0, 300) } });
        const checked = checkEditSubmission(messages.secret(), action);
        const message = await findSlackMessage(deps.db, action.ref);
        if (!checked.ok || !message || message.round !== checked.round) {
          const reason = !checked.ok ? checked.reason : !message ? 'unknown message' : 'this form was not opened by Countersign for you: open it again from the message';
          const tied = message && !(checked.ok === false && checked.forged);
          await logAnswer(deps.db, tied
            ? { tenantId: message.tenant_id, channel: 'slack', decisionId: message.decision_id, round: message.round, actor, verdict: 'approve_edit', counted: false, reason }
            : { tenantId: null, channel: 'slack', actor, verdict: 'approve_edit', counted: false, reason: `edit refused: ${reason}` });
          return fieldError(reason);
        }
        const claimed = await claimSlackInteraction(deps.db, raw, checked.action);
        if (!claimed) return fieldError('unknown message');
        if (!claimed.first) {
          await logAnswer(deps.db, { tenantId: message.tenant_id, channel: 'slack', decisionId: message.decision_id, round: message.round, actor, verdict: 'approve_edit', counted: false, reason: 'replayed payload' });
          return reply.status(200).send();
        }
        const answering = answerSlackClick(deps.db, messages, slack, claimed.message, checked.action, claimed.bodyHash);
        const outcome = await Promise.race([
          answering,
          new Promise<null>((r) => setTimeout(() => r(null), MODAL_ANSWER_WAIT_MS).unref()),
        ]).catch((err: unknown): AnswerOutcome | null => {
          req.log.error({ error: errorMessage(err) }, 'slack edit answer failed; the inbox retries it');
          return null;
        });
        if (outcome === null) answering.catch((err: unknown) => req.log.error({ error: errorMessage(err) }, 'slack edit answer failed; the inbox retries it'));
        return outcome && !outcome.counted ? fieldError(outcome.reason) : reply.status(200).send();
      }
      // Slack closes a submitted modal on an empty 200; clicks get a small JSON acknowledgement.
      const ack = (body: Record<string, unknown>) => (action.comment !== undefined ? reply.status(200).send() : reply.status(200).send(body));
      if (action.triggerId) {
        // Reject asks for a reason first, Approve with edit for the arguments: the modal opens (Slack's trigger
        // lives 3 s), its submission is the answer.
        const message = await findSlackMessage(deps.db, action.ref);
        if (!message) {
          await logAnswer(deps.db, { tenantId: null, channel: 'slack', actor: `slack:${action.teamId}/${action.userId}`, verdict: action.verdict, counted: false, reason: 'unknown message' });
          return ack({ ok: true, handled: false });
        }
        void openAnswerModal(deps.db, slack, messages.secret(), message, action).catch((err: unknown) => req.log.error({ error: errorMessage(err) }, 'slack answer modal failed'));
        return ack({ ok: true, handled: true, asks: action.opensEdit ? 'edited arguments' : 'reason' });
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

    const page = async (token: string, reply: FastifyReply, edit?: { text: string; error: string }) => {
      const found = await readEmailToken(deps.db, token);
      if ('refused' in found) return html(reply, 404, messagePage('Link not usable', found.refused));
      const { row } = found;
      const csrf = csrfFor(messages.secret(), row.token_hash);
      if (isReviewPurpose(row.purpose)) {
        const review = await loadReviewFacts(deps.db, reviewOwner(row), row.policy_id ?? '', row.decision_id);
        if (!review) return html(reply, 404, messagePage('Link not usable', 'this link is not valid'));
        if (review.status !== 'open') return html(reply, 409, messagePage('Review closed', `This policy review is ${review.status}; there is nothing to answer.`));
        return html(reply, 200, reviewConfirmationPage(review, `/v1/email-approvals/${token}`, csrf));
      }
      const facts = await loadRoundFacts(deps.db, row.tenant_id, row.decision_id, row.round);
      if (!facts) return html(reply, 404, messagePage('Link not usable', 'this link is not valid'));
      if (facts.status !== 'open') return html(reply, 409, messagePage('Round closed', `This approval round is ${facts.status}; there is nothing to answer.`));
      return html(reply, edit ? 409 : 200, confirmationPage(facts, `/v1/email-approvals/${token}`, csrf, edit));
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
      // Approve with edit: the edit is checked before the link is spent, so a refused one (not JSON, or looser than
      // what was asked) is shown on the same page for a correction, and the link stays usable.
      let edit: ChannelEdit | undefined;
      if (verdict === 'approve_edit') {
        const text = form.get('edited_args') ?? '';
        const parsed = parseEditedArgs(text);
        const digest = form.get('args_digest');
        edit = parsed.ok ? { args: parsed.args, argsDigest: digest ? digest : null } : undefined;
        const refusal = parsed.ok ? await emailEditRefusal(deps.db, messages, row, edit!) : parsed.reason;
        if (refusal !== null) {
          await logAnswer(deps.db, { tenantId: row.tenant_id, channel: 'email', decisionId: row.decision_id, round: row.round, actor: `email:${row.approver_id}`, verdict, counted: false, reason: refusal });
          return page(req.params.token, reply, { text: text.slice(0, 65_536), error: refusal });
        }
      }
      // From here on this is the link's one use, whatever becomes of the answer.
      if (!(await spendEmailLink(deps.db, row, verdict === 'approve_edit' ? 'approve' : verdict))) return refuse(404, 'Not answered', 'this link has already been used or has expired');
      if (form.get('decision_id') !== row.decision_id || form.get('round') !== String(row.round)) return refuse(409, 'Not answered', 'this link is for another decision or round (the link is now used)');
      if (verdict !== 'approve' && verdict !== 'reject' && verdict !== 'approve_edit') return refuse(400, 'Not answered', 'choose Approve or Reject (the link is now used)');
      const comment = (form.get('comment') ?? '').slice(0, 500) || undefined;
      const outcome = await answerEmail(deps.db, messages, row, verdict === 'reject' ? 'reject' : 'approve', comment, edit);
      if (!outcome.counted) return refuse(409, 'Not counted', outcome.reason);
      await logAnswer(deps.db, { tenantId: row.tenant_id, channel: 'email', decisionId: row.decision_id, round: row.round, actor: `email:${row.approver_id}`, verdict, counted: true, reason: 'counted' });
      return html(reply, 200, messagePage('Answer counted', `${edit ? 'Approved with edited arguments' : verdict === 'approve' ? 'Approved' : 'Rejected'} by ${outcome.approver}.`));
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
