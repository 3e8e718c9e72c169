import { sha256Digest } from '../receipts/canonical.ts';
import { restrictiveness, type Decision } from '../../schemas/decision-kind.ts';
import { circuitBreakerPack } from './builtin-pack.ts';
import { compileDocument } from './compile-document.ts';
import { formatPath, type PolicyError } from './policy-error.ts';
import { SNAPSHOT_FORMAT, type CompiledPolicy, type PolicyLevel, type Snapshot, type SnapshotBody } from './snapshot.ts';

/** One policy to compile: the parsed (not yet validated) document, its version, and where it came from. */
export type PolicySource = {
  document: unknown;
  version: number;
  source?: string;
  /** Agents bound to this policy (POST /v1/agents/{id}/binding): it then applies only to them. */
  agents?: string[];
};

export type CompileOptions = {
  /** Decision when nothing matches (the tenant's setting). DENY unless configured. */
  defaultDecision?: Decision;
  /** Include the built-in circuit-breaker pack (default true). */
  circuitBreakers?: boolean;
};

export type CompileResult = { ok: true; snapshot: Snapshot } | { ok: false; errors: PolicyError[] };

const LEVEL_ORDER: Record<PolicyLevel, number> = { platform: 0, tenant: 1, agent: 2, builtin: 3 };
const MAX_POLICIES = 1000;

export { restrictiveness };

/** Orders policies so the hash does not depend on the order the caller listed them in. */
function comparePolicies(a: CompiledPolicy, b: CompiledPolicy): number {
  return LEVEL_ORDER[a.level] - LEVEL_ORDER[b.level] || (a.policy_id < b.policy_id ? -1 : a.policy_id > b.policy_id ? 1 : a.version - b.version);
}

/** Hash of a snapshot body: SHA-256 over the RFC 8785 canonical JSON. */
export function hashSnapshotBody(body: SnapshotBody): `sha256:${string}` {
  return sha256Digest(body);
}

/** Builds a snapshot from compiled policies (also used to splice a draft into an active set). */
export function assembleSnapshot(policies: CompiledPolicy[], defaultDecision: Decision): Snapshot {
  // A JSON round trip drops anything JSON cannot hold, so the hashed value is exactly what gets stored.
  const body = JSON.parse(JSON.stringify({ format: SNAPSHOT_FORMAT, default_decision: defaultDecision, policies: [...policies].sort(comparePolicies) })) as SnapshotBody;
  return { ...body, hash: hashSnapshotBody(body) };
}

/** Compiles every policy once into a snapshot, or collects every error (each with its file and path). */
export function compile(policies: PolicySource[], options: CompileOptions = {}): CompileResult {
  const errors: PolicyError[] = [];
  if (!Array.isArray(policies)) return { ok: false, errors: [{ path: '', message: 'policies must be a list' }] };
  if (policies.length > MAX_POLICIES) return { ok: false, errors: [{ path: '', message: `more than ${MAX_POLICIES} policies` }] };
  const compiled: CompiledPolicy[] = [];
  const seen = new Map<string, string>();
  for (const [i, src] of policies.entries()) {
    const file = src.source ?? `policies[${i}]`;
    const result = compileDocument(src.document, src.version, src.agents);
    if (!result.ok) {
      for (const issue of result.issues) errors.push({ file, path: formatPath(issue.path), message: issue.message });
      continue;
    }
    const other = seen.get(result.policy.policy_id);
    if (other !== undefined) {
      errors.push({ file, path: 'metadata.id', message: `policy id "${result.policy.policy_id}" is also used by ${other}; a policy has one active version` });
      continue;
    }
    seen.set(result.policy.policy_id, file);
    compiled.push(result.policy);
  }
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, snapshot: assembleEffective(compiled, options) };
}

/**
 * The effective set from policies compiled earlier: what the live path and replay evaluate, from the
 * compiled policies frozen in their PolicyActivated events, so no document is compiled again after its
 * activation (a change of the compiler never changes a version that is in force or was in force).
 */
export function assembleEffective(frozen: CompiledPolicy[], options: CompileOptions = {}): Snapshot {
  const policies = options.circuitBreakers !== false ? [...frozen, circuitBreakerPack()] : [...frozen];
  return assembleSnapshot(policies, options.defaultDecision ?? 'DENY');
}
