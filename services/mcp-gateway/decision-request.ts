import { createHash } from 'node:crypto';
import type { DecisionRequestInput } from '../../schemas/decision.ts';
import { canonicalJson } from '../receipts/canonical.ts';

/**
 * The decision request the gateway makes for one MCP tools/call, and the idempotency key that lets a retry
 * find its decision. Pure.
 */

/**
 * Argument names never lifted into `context`: they are the gateway's own facts (`environment`), tags that
 * policies trust (`risk_tags`: an argument may not tag its own call read-only), or the names of the other
 * CEL variables a condition sees. Such arguments stay in `action.args`.
 */
export const RESERVED_CONTEXT_NAMES: ReadonlySet<string> = new Set(['environment', 'risk_tags', 'action', 'agent', 'model', 'now', 'output', 'status', 'context']);

/** `params._meta` key a client may set to tell two identical calls apart (or to name a retry explicitly). */
export const CLIENT_KEY_META = 'countersign/idempotency_key';
export const CLIENT_KEY = /^[\x21-\x7e]{1,200}$/;

export type CallFacts = { agent: string; environment: string | undefined; upstream: string; tool: string; args: Record<string, unknown> };

export function decisionRequestFor(call: CallFacts, idempotencyKey: string): DecisionRequestInput {
  const context: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(call.args)) {
    if (!RESERVED_CONTEXT_NAMES.has(name)) context[name] = value;
  }
  if (call.environment !== undefined) context['environment'] = call.environment;
  return {
    agent: { id: call.agent },
    action: { tool: call.upstream, operation: call.tool, args: call.args },
    context,
    idempotency_key: idempotencyKey,
  };
}

/**
 * What a client resends when it retries: the same tool and the same arguments (and its own key, when it sets
 * one). A JSON-RPC request id is not part of it: ids restart on a new connection, so they neither survive a
 * reconnect nor tell two calls apart. Without a client key the clock's window stands in for it, so the same
 * call made again the next day is a new decision.
 */
export function idempotencyBase(call: CallFacts & { clientKey: string | undefined; windowSec: number; now: number }): string {
  const scope = call.clientKey !== undefined ? { client_key: call.clientKey } : { window: Math.floor(call.now / 1000 / call.windowSec) };
  const canonical = canonicalJson({ v: 1, agent: call.agent, upstream: call.upstream, tool: call.tool, args: call.args, ...scope });
  return createHash('sha256').update(canonical).digest('hex');
}

/**
 * The n-th decision of one base: a decision authorises one execution, so once a call was forwarded under
 * generation n, the next identical call asks again under n + 1.
 */
export const idempotencyKeyFor = (base: string, generation: number): string => `mcp/${base}/${generation}`;
