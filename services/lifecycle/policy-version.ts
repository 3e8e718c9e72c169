import type { EventData } from '../../schemas/events.ts';
import type { FieldError } from '../errors.ts';
import { compile, type CompiledPolicy } from '../policy/index.ts';
import { sha256Digest } from '../receipts/canonical.ts';

/**
 * One policy version, compiled on its own (no built-in pack): its hash is sha256 over the canonical JSON of
 * the compiled policy, which is what PolicyActivated records and what the auditor recomputes.
 */
export function compilePolicyVersion(document: unknown, version: number):
  | { ok: true; policy: CompiledPolicy; hash: `sha256:${string}` }
  | { ok: false; errors: FieldError[] } {
  const res = compile([{ document, version }], { circuitBreakers: false });
  if (!res.ok) return { ok: false, errors: res.errors.map((e) => ({ path: e.path, message: e.message })) };
  const policy = res.snapshot.policies[0]!;
  return { ok: true, policy, hash: sha256Digest(policy) };
}

/** What a policy activation's signature covers. */
export function activationSigned(d: Pick<EventData<'PolicyActivated'>, 'policy_id' | 'version' | 'scope' | 'hash' | 'snapshot'>): Record<string, unknown> {
  return { policy_id: d.policy_id, version: d.version, scope: d.scope, hash: d.hash, snapshot: d.snapshot };
}
