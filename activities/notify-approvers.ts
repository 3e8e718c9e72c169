import { withTenant, type Db } from '../services/events/db.ts';
import type { Delivery, NotifyInput } from './types.ts';

/**
 * Tells a round's approvers that an answer is wanted. Every approver of the round's groups (never the
 * requester) gets the round in their pending list (`GET /v1/approvals`, the CLI, the dashboard): that is the
 * `dashboard` delivery. Chat and email deliveries plug in here, each reported per recipient.
 */
export function makeNotifyApprovers(db: Db) {
  return async function notifyApprovers(input: NotifyInput): Promise<Delivery[]> {
    const res = await withTenant(db, input.tenantId, (c) =>
      c.query<{ id: string }>(
        `SELECT id FROM principals WHERE tenant_id = $1 AND 'approver' = ANY(roles) AND groups && $2::text[] AND id <> $3 ORDER BY id`,
        [input.tenantId, input.groups, input.requestedBy],
      ),
    );
    return res.rows.map((r) => ({ channel: 'dashboard' as const, recipient: r.id }));
  };
}
