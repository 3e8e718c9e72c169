import pg from 'pg';
import { CountersignError } from '../errors.ts';

// bigint positions come back as strings: keep them exact (JS numbers lose precision past 2^53).
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => v);

export type Db = pg.Pool;

export function createPool(url: string, max = 10): Db {
  const pool = new pg.Pool({ connectionString: url, max, connectionTimeoutMillis: 5_000, idleTimeoutMillis: 30_000 });
  survivesRestarts(pool);
  return pool;
}

/**
 * A Postgres restart must never crash the process. The pool handles an idle client's 'error' event, but a client
 * checked out (inside a transaction, between two queries) that loses its connection emits 'error' with no
 * listener, which Node turns into an uncaught exception. Every client gets a listener for its whole life: the
 * query in progress (or the next one) still fails, and the pool drops the broken client when it is released.
 */
function survivesRestarts(pool: pg.Pool): void {
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
}

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', '57P01', '57P03', '08006', '08001', '08003']);

/** True when the error means Postgres is unreachable (not that the query was wrong). */
export function isConnectionError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: string }).code;
  if (code && CONNECTION_CODES.has(code)) return true;
  // "not queryable": the client lost its connection while checked out, and this was its next query.
  return /Connection terminated|timeout exceeded when trying to connect|connect ECONNREFUSED|encountered a connection error and is not queryable/i.test(err.message);
}

/** Runs fn in a transaction; connection failures surface as a 503-class error naming postgres. */
export async function inTransaction<T>(db: Db, fn: (client: pg.PoolClient) => Promise<T>, scope?: { setting: string; value: string }): Promise<T> {
  let client: pg.PoolClient;
  try {
    client = await db.connect();
  } catch (err) {
    throw CountersignError.dependency('postgres', err);
  }
  try {
    // The transaction and its scope in one round trip (a simple-protocol batch, so the value is a literal that
    // pg escapes). SET LOCAL semantics: set_config(..., true) ends with the transaction.
    await client.query(scope ? `BEGIN; SELECT set_config('${scope.setting}', ${client.escapeLiteral(scope.value)}, true)` : 'BEGIN');
    const out = await fn(client);
    await client.query('COMMIT');
    return out;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    if (isConnectionError(err)) throw CountersignError.dependency('postgres', err);
    throw err;
  } finally {
    client.release();
  }
}

/** Anything that runs a query: the pool, or a client inside a scope. */
export type Queryable = Pick<pg.PoolClient, 'query'>;

/**
 * The named reasons a code path may read or write across tenants (migration 0002). Adding one is a design
 * decision: each is a place where the database no longer checks the tenant for us.
 */
export const SYSTEM_SCOPES = {
  authenticate: 'finding an API key by its public prefix, before the tenant is known',
  publisher: 'publishing every committed event to Kafka',
  audit: 'replaying every tenant’s log',
  'platform-admin': "a platform admin creating or listing tenants, validating a platform policy's draft against every tenant's runs, or answering a platform policy's review",
  channels: 'tying a Slack click or an email link to its tenant before the tenant is known; the Slack inbox sweep; recording refusals that name no tenant',
  inspection: 'tests and operator tools that inspect the whole database',
  metrics: "counting the decisions waiting for an answer across tenants for the operators' gauges (counts only; no row leaves)",
} as const;
export type SystemScope = keyof typeof SYSTEM_SCOPES;

/**
 * Runs fn in a transaction scoped to one tenant: row-level security (migration 0002) shows and accepts only
 * that tenant's rows, whatever the queries say. The setting is transaction-local (SET LOCAL), so it ends
 * with the transaction and never leaks to the next user of the pooled connection.
 */
export async function withTenant<T>(db: Db, tenantId: string, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  if (!tenantId) throw new Error('withTenant needs a tenant id');
  return inTransaction(db, fn, { setting: 'countersign.tenant_id', value: tenantId });
}

/** Runs fn in a transaction that may cross tenants, for one of the named SYSTEM_SCOPES only. */
export async function withSystem<T>(db: Db, scope: SystemScope, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  if (!(scope in SYSTEM_SCOPES)) throw new Error(`unknown system scope ${String(scope)}`);
  return inTransaction(db, fn, { setting: 'countersign.system', value: scope });
}

/**
 * A pool whose every connection is in the `inspection` system scope for its whole session. Only for tests
 * and operator tools that must see every tenant's rows; services use withTenant/withSystem per transaction.
 */
export function createInspectionPool(url: string, max = 4): Db {
  // A startup option, so the setting is in place before the first query (no racing query on connect).
  const pool = new pg.Pool({ connectionString: url, max, connectionTimeoutMillis: 5_000, idleTimeoutMillis: 30_000, options: '-c countersign.system=inspection' });
  survivesRestarts(pool);
  return pool;
}
