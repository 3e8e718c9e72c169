import { NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { createActivities } from '../../activities/index.ts';
import { slackTeamOf } from '../../activities/notify-approvers.ts';
import { startDigestSweeper } from '../channels/digest.ts';
import { smtpMailer } from '../channels/email.ts';
import { slackClient } from '../channels/slack.ts';
import { loadConfigOrExit } from '../config.ts';
import { createPool } from '../events/db.ts';
import { PrincipalCache } from '../identity/key-cache.ts';
import { requireSigningKeys } from '../receipts/deployment-keys.ts';
import { createPinoLogger, logFnOf } from '../logger.ts';
import { temporalLogger } from './temporal-logger.ts';
import { connectionOptions } from '../temporal/connection-options.ts';
import { describeTemporal } from '../temporal/connection-settings.ts';
import { awaitTemporalCredentials } from '../temporal/credentials-check.ts';
import { staleBuildSource } from './stale-build.ts';
import { WORKFLOW_INTERCEPTOR_MODULES, workflowsPath } from './workflows-path.ts';
import { startTracing } from '../telemetry/tracing.ts';
import { workerTracing } from '../telemetry/temporal-tracing.ts';
import { messageRefusalKind, probe, refusalKind, serveMetrics, workerMetrics } from './metrics.ts';

const config = loadConfigOrExit(process.env, 'worker');
const logger = createPinoLogger('worker', config.COUNTERSIGN_LOG_LEVEL);
const log = logFnOf(logger);
// The SDK's own lines, the activities' and the workflows' logs, through the same logger.
Runtime.install({ logger: temporalLogger(logger) });
const tracing = await startTracing('countersign-worker', config);
const stale = staleBuildSource();
if (stale) {
  log('error', 'this prebuilt worker is older than its sources; rebuild it (npm run build) or run services/worker/main.ts', { source: stale });
  process.exit(1);
}
// The worker signs receipts: it starts only with the deployment's keys.
await requireSigningKeys(config.keysDir, config.COUNTERSIGN_ATTESTATION_SECRET).catch((err: unknown) => {
  log('error', `refusing to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
const db = createPool(config.DATABASE_URL, config.COUNTERSIGN_PG_POOL_MAX ?? 10);
const channels = {
  slack: config.COUNTERSIGN_SLACK_BOT_TOKEN ? slackClient({ botToken: config.COUNTERSIGN_SLACK_BOT_TOKEN, apiUrl: config.COUNTERSIGN_SLACK_API_URL }) : undefined,
  mailer: config.COUNTERSIGN_SMTP_URL ? smtpMailer(config.COUNTERSIGN_SMTP_URL, config.COUNTERSIGN_MAIL_FROM) : undefined,
  publicUrl: config.publicUrl,
  cap: { max: config.COUNTERSIGN_NOTIFY_CAP, windowSec: config.COUNTERSIGN_NOTIFY_CAP_WINDOW },
};
// Approvers' roles and groups, cached for the answer check; dropped on any principal change (migration 0012).
const principals = new PrincipalCache(config.DATABASE_URL, log);
await principals.start();
const metrics = workerMetrics();
let refusedStarts = 0;
const activities = createActivities({
  db,
  keysDir: config.keysDir,
  attestationSecret: config.COUNTERSIGN_ATTESTATION_SECRET,
  callbackAllowPrivate: config.COUNTERSIGN_CALLBACK_ALLOW_PRIVATE,
  evaluatorAllowHosts: config.COUNTERSIGN_EVALUATOR_ALLOW_HOSTS,
  crashAt: config.COUNTERSIGN_CRASH_AT,
  channels,
  principals,
  // Someone who can reach Temporal started a decision workflow the API did not sign: nothing was written.
  onRefusedStart: (r) => {
    refusedStarts += 1;
    metrics.refusedStarts.inc({ reason: refusalKind(r.reason) });
    log('warn', 'refused a workflow start that the API did not sign; nothing was written', {
      workflow_id: r.workflowId, tenant_id: r.tenantId, decision_id: r.decisionId, reason: r.reason, refused_starts_total: refusedStarts,
    });
  },
  onRefusedMessage: (kind, reason) => metrics.refusedMessages.inc({ kind: ['answer', 'override', 'outcome'].includes(kind) ? kind : 'other', reason: messageRefusalKind(reason) }),
  onFinalized: (decision, via, seconds) => {
    metrics.finalized.inc({ decision, via });
    metrics.timeToFinal.observe({ decision, via }, seconds);
  },
});
let connection: NativeConnection | null = null;
let polling = false;
const metricsServer = config.COUNTERSIGN_WORKER_METRICS_PORT !== undefined
  ? await serveMetrics(metrics.registry, config.COUNTERSIGN_HOST, config.COUNTERSIGN_WORKER_METRICS_PORT, {
    ready: async () => {
      const [postgres, temporal] = await Promise.all([
        probe(2_000, () => db.query('SELECT 1')),
        connection && polling ? probe(2_000, () => connection!.workflowService.getSystemInfo({})) : Promise.resolve('down: not connected yet'),
      ]);
      return { postgres, temporal };
    },
    detail: () => ({ polling }),
  })
  : null;

// Digests of notifications held back by the per-approver cap, sent when each approver's window allows.
const digests = startDigestSweeper({ db, ...channels, slackTeam: slackTeamOf(), log: (level, msg, data) => log(level, msg, data) });

// The SDK shuts a running worker down on SIGINT/SIGTERM; these also end the wait for Temporal below.
const stopping = new AbortController();
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => stopping.abort());
const pause = (ms: number) => new Promise<void>((resolve) => {
  const t = setTimeout(resolve, ms);
  stopping.signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
});

/**
 * Connects to Temporal and runs the worker until it is stopped. Temporal unreachable at start-up (or a worker
 * that fails later) is waited out with a backoff of up to 5 s, never a reason to exit: the worker serves as
 * soon as Temporal answers. A Postgres outage only fails the activities that need it, which Temporal retries.
 */
const temporalInfo = describeTemporal(config.temporal);
const refuseToStart = async (err: unknown) => {
  log('error', `refusing to start: ${err instanceof Error ? err.message : String(err)}`);
  await Promise.allSettled([digests.stop(), principals.stop(), db.end()]);
  metricsServer?.close();
  process.exit(1);
};
// Credentials Temporal refuses are no outage to wait out: the worker refuses to start, with one line.
await awaitTemporalCredentials(config.temporal, {
  signal: stopping.signal,
  onWait: (reason, retryMs) => log('warn', 'Temporal unreachable; waiting for it', { temporal: temporalInfo, error: reason, retry_ms: retryMs }),
}).catch(refuseToStart);
// Neither a workflow bundle nor the sources to bundle (a deployment without COUNTERSIGN_WORKFLOW_BUNDLE): no
// retry can help, so the worker refuses to start with one line instead of waiting.
try {
  workflowsPath(config.COUNTERSIGN_WORKFLOW_BUNDLE);
} catch (err) {
  await refuseToStart(err);
}
let backoff = 250;
let started = false;
while (!stopping.signal.aborted) {
  try {
    connection = await NativeConnection.connect(connectionOptions(config.temporal));
    const source = workflowsPath(config.COUNTERSIGN_WORKFLOW_BUNDLE, (msg) => log('warn', msg));
    // A prebuilt bundle carries the workflow interceptors; sources are bundled here with them.
    const traced = await workerTracing(tracing, 'workflowsPath' in source ? WORKFLOW_INTERCEPTOR_MODULES : []);
    const worker = await Worker.create({
      connection,
      namespace: config.temporal.namespace,
      taskQueue: config.COUNTERSIGN_TASK_QUEUE,
      ...source,
      ...traced,
      activities,
    });
    if (stopping.signal.aborted) break;
    polling = true;
    backoff = 250;
    if (!started) {
      const cpu = process.cpuUsage();
      log('info', 'worker started', { task_queue: config.COUNTERSIGN_TASK_QUEUE, temporal: temporalInfo, start_ms: Math.round(performance.now()), start_cpu_ms: Math.round((cpu.user + cpu.system) / 1000) });
    } else {
      log('info', 'worker polling again', { temporal: temporalInfo });
    }
    started = true;
    await worker.run(); // resolves after SIGINT/SIGTERM, which the SDK handles by shutting down gracefully
    if (!stopping.signal.aborted) log('warn', 'worker stopped without being asked to; starting it again');
  } catch (err) {
    if (stopping.signal.aborted) break;
    log('warn', started ? 'worker failed; starting it again once Temporal answers' : 'Temporal unreachable; waiting for it', { temporal: temporalInfo, error: err instanceof Error ? err.message : String(err), retry_ms: backoff });
  } finally {
    polling = false;
    await connection?.close().catch(() => {});
    connection = null;
  }
  await pause(backoff);
  backoff = Math.min(backoff * 2, 5_000);
}
await digests.stop();
metricsServer?.close();
await principals.stop();
await db.end();
if (tracing.enabled) await tracing.shutdown();
log('info', 'worker stopped');
