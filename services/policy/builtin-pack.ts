import { normaliseApproval } from './lower-rule.ts';
import type { CompiledPolicy } from './snapshot.ts';

/**
 * The built-in circuit-breaker pack (seed 000): sensitive operations of the well-known tools require
 * approval unless a stored policy says otherwise. Precedence (see README "Precedence"): a pack rule is
 * set aside when any matched rule of a platform, tenant or agent policy names the same tool with a
 * `tool` pattern other than a bare `*` (and, if it has an `operation` pattern, that operation too);
 * per-call rules never set the pack aside, because they may only tighten.
 */
export const CIRCUIT_BREAKERS_ID = 'builtin.circuit-breakers';
export const CIRCUIT_BREAKERS_VERSION = 1;

export const CIRCUIT_BREAKER_OPERATIONS: Record<string, string[]> = {
  file_tool: ['FileDelete', 'FileOverwrite', 'FileMove'],
  payment_tool: ['Payment', 'Refund', 'SubscriptionChange'],
  deploy_tool: ['Deploy', 'Rollback', 'Scale'],
  email_tool: ['SendEmail', 'SendBulkEmail'],
  database_tool: ['DatabaseMutate', 'DatabaseDelete', 'DatabaseBackup'],
};

export function circuitBreakerPack(): CompiledPolicy {
  return {
    policy_id: CIRCUIT_BREAKERS_ID,
    version: CIRCUIT_BREAKERS_VERSION,
    level: 'builtin',
    rules: Object.entries(CIRCUIT_BREAKER_OPERATIONS).map(([tool, operations]) => ({
      name: `circuit-breaker.${tool}`,
      on: 'request' as const,
      match: { tool: [tool], operation: [...operations] },
      decision: 'REQUIRE_APPROVAL' as const,
      reason: `${tool} ${operations.join('/')} is a sensitive operation: built-in circuit breaker requires approval`,
      constraints: {},
      approval: normaliseApproval(undefined),
    })),
  };
}
