import { z } from 'zod';
import type { FastifyInstance } from 'fastify';
import { APPROVAL_STREAM_EVENT, APPROVAL_STREAM_PING_SECONDS, ApprovalStreamEvent } from '../../../schemas/approval-stream.ts';
import { ProblemSchema } from '../../../schemas/api.ts';
import { createLogger } from '../../logger.ts';
import { peekSession } from '../../console/sessions.ts';
import { sessionLimits } from '../../console/session-auth.ts';
import type { Principal } from '../../identity/principals.ts';
import { ApprovalStreamHub } from '../approval-stream-hub.ts';
import { authenticated, principalOf, requirePrincipal, type ApiDeps } from '../server.ts';

/** Open streams one principal may hold (tabs and devices): enough for a person, few enough that a key cannot pin the server. */
export const STREAMS_PER_PRINCIPAL = 5;
/** Open streams one API process holds, all tenants together. */
export const STREAMS_PER_PROCESS = 2000;

const ROLES = ['approver', 'admin'] as const;

const eventSchemaText = JSON.stringify(z.toJSONSchema(ApprovalStreamEvent));

/**
 * GET /v1/approvals/stream: the caller's inbox as server-sent events (schemas/approval-stream.ts). Authenticated
 * like every route (bearer key, or the console's session cookie: a GET changes nothing, so no CSRF token), and
 * again at every ping; tenant-scoped by the hub; at most STREAMS_PER_PRINCIPAL per principal. Ended cleanly at
 * shutdown (preClose, before the server stops accepting: each response completes).
 */
export function registerApprovalStreamRoute(app: FastifyInstance, deps: ApiDeps, hubOverride?: ApprovalStreamHub): ApprovalStreamHub {
  const hub = hubOverride ?? new ApprovalStreamHub({
    url: deps.config.DATABASE_URL, db: deps.db, log: createLogger('api', deps.config.COUNTERSIGN_LOG_LEVEL),
    limits: { perPrincipal: STREAMS_PER_PRINCIPAL, total: STREAMS_PER_PROCESS, pingMs: APPROVAL_STREAM_PING_SECONDS * 1000 },
  });
  app.addHook('onReady', () => hub.start());
  app.addHook('preClose', () => hub.stop());

  // Untyped on purpose: the 200 is a stream body, which the typed reply (a string schema, for the OpenAPI document) cannot take.
  app.get('/v1/approvals/stream', {
    onRequest: authenticated(deps, [...ROLES]),
    schema: {
      tags: ['approvals'],
      summary: "The caller's inbox, live: server-sent events whenever a round or review the caller may answer opens or closes",
      description: [
        'A `text/event-stream` that stays open. Each change is one event:',
        '',
        '```',
        `event: ${APPROVAL_STREAM_EVENT}`,
        'data: {"id":"dec_…","kind":"decision","status":"closed","reason":"approved"}',
        '```',
        '',
        `\`data\` is JSON of this schema: \`${eventSchemaText}\`.`,
        `A \`: ping\` comment comes every ${APPROVAL_STREAM_PING_SECONDS} s. The stream is the caller's tenant's only, for the rounds its principal may answer`,
        '(approver of one of the round\'s groups, never its requester; admins for activation reviews). The key or session is checked again at every ping,',
        `and the stream ends when it no longer holds. At most ${STREAMS_PER_PRINCIPAL} open streams per principal on each API process (429 beyond). The stream also ends when the`,
        'server shuts down or loses its database notifications: reconnect (EventSource does, after `retry`) and read GET /v1/approvals again.',
      ].join('\n'),
      querystring: z.strictObject({}),
      produces: ['text/event-stream'],
      response: {
        200: z.string().describe('text/event-stream: `event: round` frames (data: ApprovalStreamEvent as JSON) and `: ping` comments.'),
        401: ProblemSchema, 403: ProblemSchema, 429: ProblemSchema, 503: ProblemSchema,
      },
    },
  }, async (req, reply) => {
    const principal = principalOf(req);
    // A session is re-read without touching it (an open tab is not activity); a key is authenticated again.
    const session = req.consoleSession?.id;
    const recheck = async (): Promise<Principal | null> => {
      const now = session ? await peekSession(deps.db, session, sessionLimits(deps.config)) : await requirePrincipal(deps, req, [...ROLES]).catch(() => null);
      return now && ROLES.some((r) => now.roles.includes(r)) ? now : null;
    };
    const { body, gone } = hub.open(principal, recheck);
    req.raw.on('close', gone);
    return reply
      .header('content-type', 'text/event-stream; charset=utf-8')
      .header('cache-control', 'no-cache, no-transform')
      .header('x-accel-buffering', 'no')
      .send(body);
  });
  return hub;
}
