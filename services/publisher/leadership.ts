import pg from 'pg';
import { abortableSleep } from './abortable-sleep.ts';

type Log = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

export type LeadershipOptions = {
  url: string;
  /** The publisher's name (`kafka:<topic>`): publishers of one name share one leader. */
  name: string;
  log: Log;
  signal: AbortSignal;
  /** How often a standby tries to take the lead, and the leader checks its lock's session (ms). */
  pollMs?: number;
  /** Postgres ends the leader's session after this long without a heartbeat (a vanished host), releasing the lock. */
  sessionTimeoutMs?: number;
  onRole?: (role: 'leader' | 'standby') => void;
};

export const LEADERSHIP_DEFAULTS = { pollMs: 1_000, sessionTimeoutMs: 10_000 } as const;

const sleep = abortableSleep;

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * Runs `lead` only while this process holds the publisher's Postgres advisory lock, on a connection of its own.
 *
 * Why a session lock: Postgres releases it the moment the holder's session ends, and a killed process's session
 * ends with its socket, so a standby (trying every `pollMs`) takes over within about a second. A host that
 * vanishes without closing its socket is covered by idle_session_timeout on the lock's session: the leader
 * runs a heartbeat query every `pollMs`, so only a leader that stopped answering is idle that long.
 *
 * The leader stops publishing (aborts `lead`) as soon as its lock's connection fails or a heartbeat goes
 * unanswered for `sessionTimeoutMs / 2`, which is before Postgres can hand the lock to anyone else; two
 * leaders never publish at once in steady state. After a leader crash the next one resends at most the batch
 * whose checkpoint the old one had not written yet (consumers deduplicate by event id).
 */
export async function whileLeader(opts: LeadershipOptions, lead: (signal: AbortSignal) => Promise<void>): Promise<void> {
  const pollMs = opts.pollMs ?? LEADERSHIP_DEFAULTS.pollMs;
  const sessionTimeoutMs = opts.sessionTimeoutMs ?? LEADERSHIP_DEFAULTS.sessionTimeoutMs;
  let warned = false;
  let role: 'leader' | 'standby' | null = null;
  const become = (r: 'leader' | 'standby') => {
    if (role !== r) opts.onRole?.(r);
    role = r;
  };
  while (!opts.signal.aborted) {
    const client = new pg.Client({ connectionString: opts.url, keepAlive: true, connectionTimeoutMillis: 5_000 });
    const lost = new AbortController();
    // A lost lock connection is expected (Postgres restarting): it ends leadership, never the process.
    client.on('error', (err) => lost.abort(err));
    client.on('end', () => lost.abort(new Error('lock connection ended')));
    try {
      await client.connect();
      await client.query(`SELECT set_config('idle_session_timeout', $1, false)`, [String(sessionTimeoutMs)]);
      if (warned) opts.log('info', 'publisher lock connection is back');
      warned = false;
      become('standby');
      while (!opts.signal.aborted && !lost.signal.aborted) {
        const got = await client.query<{ ok: boolean }>(`SELECT pg_try_advisory_lock(hashtext('countersign.publisher'), hashtext($1)) AS ok`, [opts.name]);
        if (got.rows[0]?.ok) break;
        await sleep(pollMs, AbortSignal.any([opts.signal, lost.signal]));
      }
      if (opts.signal.aborted || lost.signal.aborted) continue;
      opts.log('info', 'publisher leading', { name: opts.name });
      become('leader');
      const leading = new AbortController();
      const stop = AbortSignal.any([opts.signal, lost.signal, leading.signal]);
      const heartbeat = (async () => {
        while (!stop.aborted) {
          await sleep(pollMs, stop);
          if (stop.aborted) return;
          let timer: NodeJS.Timeout | undefined;
          try {
            await Promise.race([
              client.query('SELECT 1'),
              new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('lock session heartbeat unanswered')), sessionTimeoutMs / 2); }),
            ]);
          } catch (err) {
            leading.abort(err);
          } finally {
            clearTimeout(timer);
          }
        }
      })();
      await lead(stop);
      leading.abort();
      await heartbeat;
      if (!opts.signal.aborted) opts.log('warn', 'publisher stopped leading: its lock session was lost', { error: message(lost.signal.reason ?? leading.signal.reason) });
    } catch (err) {
      if (!warned) opts.log('warn', 'publisher lock connection failed; retrying', { error: message(err) });
      warned = true;
    } finally {
      // Ending the session releases the lock (if held) for a standby.
      await Promise.race([client.end().catch(() => {}), new Promise((r) => setTimeout(r, 2_000).unref())]);
    }
    if (!opts.signal.aborted) {
      become('standby');
      await sleep(pollMs, opts.signal);
    }
  }
}
