import path from 'node:path';
import pg from 'pg';
import { runner } from 'node-pg-migrate';

const MIGRATIONS_DIR = path.join(import.meta.dirname, 'migrations');

/** What the application role may do, table by table. The event log gets SELECT and INSERT only. */
const APP_GRANTS: Array<[string, string]> = [
  ['events', 'SELECT, INSERT'],
  ['idempotency_keys', 'SELECT, INSERT'],
  ['counter_entries', 'SELECT, INSERT'],
  ['publisher_checkpoints', 'SELECT, INSERT, UPDATE'],
  ['tenants', 'SELECT, INSERT, UPDATE'],
  ['principals', 'SELECT, INSERT, UPDATE'],
  ['api_keys', 'SELECT, INSERT, UPDATE'],
  ['channel_email_tokens', 'SELECT, INSERT, UPDATE'],
  ['channel_slack_messages', 'SELECT, INSERT, UPDATE'],
  ['tool_catalog_sources', 'SELECT, INSERT, UPDATE, DELETE'],
  ['tool_catalog_heads', 'SELECT, INSERT, UPDATE'],
  ['channel_slack_interactions', 'SELECT, INSERT, UPDATE'],
  ['channel_answer_log', 'SELECT, INSERT'],
  ['channel_notification_sends', 'SELECT, INSERT, UPDATE'],
  ['channel_digest_items', 'SELECT, INSERT, UPDATE'],
  ['channel_slack_workspaces', 'SELECT, INSERT, UPDATE'],
  ['console_sessions', 'SELECT, INSERT, UPDATE'],
  ['decision_monitor', 'SELECT, INSERT, UPDATE'],
  ['delegations', 'SELECT, INSERT, UPDATE'],
  ['tenant_evaluators', 'SELECT, INSERT, UPDATE, DELETE'],
  ['console_links', 'SELECT, INSERT, UPDATE'],
  ['audit_replays', 'SELECT, INSERT'],
  // A projection of open rounds: a round that closes is deleted by the append's trigger (migration 0026).
  ['approval_inbox', 'SELECT, INSERT, UPDATE, DELETE'],
  ['approval_inbox_audience', 'SELECT, INSERT, UPDATE, DELETE'],
];

/**
 * Runs pending migrations as the schema owner, then grants the application role (the user of `appUrl`)
 * exactly what it needs. Safe to run concurrently: node-pg-migrate takes an advisory lock.
 */
export async function migrate(adminUrl: string, appUrl: string, log: (msg: string) => void = () => {}): Promise<string[]> {
  const applied = await runner({
    databaseUrl: adminUrl,
    dir: MIGRATIONS_DIR,
    direction: 'up',
    migrationsTable: 'pgmigrations',
    checkOrder: true,
    singleTransaction: true,
    advisoryLockMode: 'wait',
    log: () => {},
  });
  const appUser = new URL(appUrl).username;
  const adminUser = new URL(adminUrl).username;
  if (appUser && appUser !== adminUser) {
    const client = new pg.Client({ connectionString: adminUrl });
    await client.connect();
    try {
      const ident = client.escapeIdentifier(decodeURIComponent(appUser));
      for (const [table, privileges] of APP_GRANTS) {
        await client.query(`REVOKE ALL ON ${table} FROM ${ident}`);
        await client.query(`GRANT ${privileges} ON ${table} TO ${ident}`);
      }
    } finally {
      await client.end();
    }
  }
  for (const m of applied) log(`migrated ${m.name}`);
  return applied.map((m) => m.name);
}
