import { PassThrough } from 'node:stream';
import { z } from 'zod';
import { APPROVAL_STREAM_EVENT, ApprovalStreamEvent } from '../../schemas/approval-stream.ts';
import { CountersignError } from '../errors.ts';
import { withTenant, type Db } from '../events/db.ts';
import { PgListener } from '../events/listener.ts';
import type { Principal } from '../identity/principals.ts';
import type { LogFn } from '../logger.ts';

/** The NOTIFY channel the inbox projection's trigger writes to (migration 0026, countersign_inbox_notify). */
export const INBOX_CHANNEL = 'countersign_inbox';

/** What the trigger sends: the change, its tenant, and who may hear of it (absent when `wide`: too large to send). */
const Notice = z.object({
  tenant: z.string(),
  id: z.string(),
  kind: ApprovalStreamEvent.shape.kind,
  status: ApprovalStreamEvent.shape.status,
  reason: ApprovalStreamEvent.shape.reason,
  key: z.string(),
  groups: z.array(z.string()).nullish(),
  excluded: z.array(z.string()).nullish(),
  answered: z.array(z.string()).nullish(),
  only: z.array(z.string()).nullish(),
  wide: z.boolean().optional(),
});
type Notice = z.infer<typeof Notice>;
type Audience = { groups: string[] | null; excluded: string[]; answered: string[]; only: string[] | null };

/** One open stream: its principal (as authenticated when it opened, re-checked at every ping) and its response body. */
type Connection = { principal: Principal; body: PassThrough; recheck: () => Promise<Principal | null>; timer: NodeJS.Timeout };

export type HubLimits = {
  /** Open streams per principal; one more is refused with 429. */
  perPrincipal: number;
  /** Open streams in this API process. */
  total: number;
  pingMs: number;
};

/**
 * The approvers' live inbox (GET /v1/approvals/stream). One LISTEN connection for the whole process (never one
 * per stream, never polling): each notification of the inbox projection is sent, as an SSE `round` event, to the
 * streams of its tenant whose principal may answer that item (approver of one of its groups, or admin for a
 * review; never its requester or an author). A lost LISTEN connection ends every stream (a notification may have
 * been missed; EventSource reconnects and the client reads its inbox again), as does shutdown.
 */
export class ApprovalStreamHub {
  private readonly byTenant = new Map<string, Set<Connection>>();
  private readonly perPrincipal = new Map<string, number>();
  private readonly listener: PgListener;
  private count = 0;
  private closed = false;

  constructor(private readonly opts: { url: string; db: Db; log: LogFn; limits: HubLimits }) {
    this.listener = new PgListener({
      url: opts.url, channel: INBOX_CHANNEL, log: opts.log,
      onNotify: (payload) => void this.deliver(payload).catch((err: unknown) => opts.log('warn', 'inbox notice not delivered', { error: String(err) })),
      onLost: () => this.endAll(),
    });
  }

  start(): Promise<void> {
    this.closed = false;
    return this.listener.start();
  }

  /** Ends every stream (their responses complete), then stops listening. */
  async stop(): Promise<void> {
    this.closed = true;
    this.endAll();
    await this.listener.stop();
  }

  get listening(): boolean {
    return this.listener.listening;
  }

  /** Open streams (all tenants). */
  get size(): number {
    return this.count;
  }

  /**
   * Opens a stream for this principal: the response body to send, ended when the client goes (`gone`), at
   * shutdown, or when `recheck` (run at every ping: the caller's principal now, or null) finds the key or session
   * no longer holds; a principal whose roles or groups changed hears from then on by its new ones.
   */
  open(principal: Principal, recheck: () => Promise<Principal | null>): { body: PassThrough; gone: () => void } {
    if (this.closed) throw new CountersignError('dependency_unavailable', 'the server is shutting down');
    if (!this.listener.listening) throw CountersignError.dependency('postgres', new Error('the inbox listener is not connected'));
    const who = `${principal.tenant_id}/${principal.id}`;
    const mine = this.perPrincipal.get(who) ?? 0;
    if (mine >= this.opts.limits.perPrincipal) {
      throw new CountersignError('rate_limited', `at most ${this.opts.limits.perPrincipal} open inbox streams per principal; close one first`);
    }
    if (this.count >= this.opts.limits.total) throw new CountersignError('rate_limited', 'too many open inbox streams on this server; try again later');
    const body = new PassThrough();
    const conn: Connection = { principal, body, recheck, timer: setInterval(() => void this.ping(conn), this.opts.limits.pingMs) };
    conn.timer.unref();
    this.perPrincipal.set(who, mine + 1);
    this.count += 1;
    let set = this.byTenant.get(principal.tenant_id);
    if (!set) this.byTenant.set(principal.tenant_id, (set = new Set()));
    set.add(conn);
    // The client reconnects after 3 s when the stream ends; the first comment flushes the headers at once.
    body.write(`retry: 3000\n: connected\n\n`);
    let done = false;
    const gone = () => {
      if (done) return;
      done = true;
      clearInterval(conn.timer);
      set.delete(conn);
      if (set.size === 0 && this.byTenant.get(principal.tenant_id) === set) this.byTenant.delete(principal.tenant_id);
      const left = (this.perPrincipal.get(who) ?? 1) - 1;
      if (left <= 0) this.perPrincipal.delete(who);
      else this.perPrincipal.set(who, left);
      this.count -= 1;
      if (!body.writableEnded) body.end();
    };
    body.on('close', gone);
    body.on('finish', gone);
    return { body, gone };
  }

  private async ping(conn: Connection): Promise<void> {
    // A revoked key, an ended session or a changed role ends the stream: it was authorised when it opened only.
    const now = await conn.recheck().catch(() => null);
    if (!now || now.id !== conn.principal.id || now.tenant_id !== conn.principal.tenant_id) {
      conn.body.end();
      return;
    }
    conn.principal = now;
    if (!conn.body.writableEnded) conn.body.write(': ping\n\n');
  }

  private endAll(): void {
    for (const set of this.byTenant.values()) for (const c of [...set]) c.body.end();
  }

  private async deliver(payload: string): Promise<void> {
    const parsed = Notice.safeParse(JSON.parse(payload));
    if (!parsed.success) {
      this.opts.log('warn', 'unreadable inbox notice', { payload: payload.slice(0, 200) });
      return;
    }
    const n = parsed.data;
    const set = this.byTenant.get(n.tenant);
    if (!set || set.size === 0) return;
    const audience = n.wide ? await this.audienceOf(n) : { groups: n.groups ?? null, excluded: n.excluded ?? [], answered: n.answered ?? [], only: n.only ?? null };
    const event: ApprovalStreamEvent = { id: n.id, kind: n.kind, status: n.status, reason: n.reason };
    const frame = `event: ${APPROVAL_STREAM_EVENT}\ndata: ${JSON.stringify(event)}\n\n`;
    for (const c of set) {
      if (c.principal.tenant_id === n.tenant && mayHear(c.principal, n, audience) && !c.body.writableEnded) c.body.write(frame);
    }
  }

  /** A `wide` notice's audience, from the projection (open items); a closed one goes to every holder of its role. */
  private async audienceOf(n: Notice): Promise<Audience> {
    const row = await withTenant(this.opts.db, n.tenant, (c) => c.query<{ groups: string[]; excluded: string[]; answered: string[] }>(
      'SELECT groups, excluded, answered FROM approval_inbox WHERE item_key = $1', [n.key]));
    const r = row.rows[0];
    if (n.status === 'open' && r) return { groups: n.kind === 'activation_review' ? null : r.groups, excluded: r.excluded, answered: r.answered, only: null };
    return { groups: null, excluded: [], answered: [], only: null };
  }
}

/**
 * Whether a principal may hear of this change: the tenant's (checked by the caller), the role that answers the
 * kind (approver for rounds, admin for reviews), one of the round's groups, not its requester nor an author,
 * and for an `open`, not one who answered it already. `only` (an answer) names exactly who hears of it.
 */
export function mayHear(p: Principal, n: Pick<Notice, 'kind' | 'status'>, a: Audience): boolean {
  const role = n.kind === 'activation_review' ? 'admin' : 'approver';
  if (!p.roles.includes(role)) return false;
  if (a.only) return a.only.includes(p.id);
  if (a.excluded.includes(p.id)) return false;
  if (n.status === 'open' && a.answered.includes(p.id)) return false;
  if (n.kind !== 'activation_review' && a.groups !== null && !p.groups.some((g) => a.groups!.includes(g))) return false;
  return true;
}
