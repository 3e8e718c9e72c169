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

/**
 * Whether `hash` is this compiled version's, as today's compiler hashes it or as it was hashed before defaulted
 * approval timeouts were marked: activations and exports from before document hashes were signed are tied to
 * their document only by compiling it again, and both are faithful compilations of the same document.
 */
export function isVersionHash(compiled: { policy: CompiledPolicy; hash: string }, hash: string): boolean {
  return compiled.hash === hash || sha256Digest(withoutDefaultMarks(compiled.policy)) === hash;
}

function withoutDefaultMarks(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutDefaultMarks);
  if (typeof v !== 'object' || v === null) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (k !== 'timeout_defaulted') out[k] = withoutDefaultMarks(x);
  return out;
}

/** What a policy activation's signature covers. */
export function activationSigned(d: Pick<EventData<'PolicyActivated'>, 'policy_id' | 'version' | 'scope' | 'hash' | 'snapshot' | 'document_hash'>): Record<string, unknown> {
  const signed: Record<string, unknown> = { policy_id: d.policy_id, version: d.version, scope: d.scope, hash: d.hash, snapshot: d.snapshot };
  // Activations that record the document's hash sign it too; earlier ones signed the snapshot alone.
  if (d.document_hash !== undefined) signed['document_hash'] = d.document_hash;
  return signed;
}

/**
 * The compiled policy frozen in an activation, checked against the hash it was activated (and signed) with.
 * This, never a recompilation of the document, is what evaluates live and in replay: the compiler of the
 * day a version was activated decides what it means, for as long as it is in force and afterwards.
 */
export function frozenPolicy(d: Pick<EventData<'PolicyActivated'>, 'policy_id' | 'version' | 'snapshot' | 'hash'>):
  | { ok: true; policy: CompiledPolicy }
  | { ok: false; problem: string } {
  const p = d.snapshot as Partial<CompiledPolicy>;
  if (sha256Digest(d.snapshot) !== d.hash) return { ok: false, problem: `policy ${d.policy_id} v${d.version}: its frozen snapshot does not hash to the activated ${d.hash}` };
  if (p.policy_id !== d.policy_id || p.version !== d.version || !Array.isArray(p.rules)) {
    return { ok: false, problem: `policy ${d.policy_id} v${d.version}: its frozen snapshot names ${String(p.policy_id)} v${String(p.version)}` };
  }
  return { ok: true, policy: d.snapshot as unknown as CompiledPolicy };
}
