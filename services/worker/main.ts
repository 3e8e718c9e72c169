import { NativeConnection, Worker } from '@temporalio/worker';
import { createActivities } from '../../activities/index.ts';
import { loadConfig } from '../config.ts';
import { createPool } from '../events/db.ts';
import { createLogger } from '../logger.ts';
import { workflowsPath } from './workflows-path.ts';

const config = loadConfig();
const log = createLogger('worker', config.COUNTERSIGN_LOG_LEVEL);
const db = createPool(config.DATABASE_URL, 10);
const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
const worker = await Worker.create({
  connection,
  namespace: config.TEMPORAL_NAMESPACE,
  taskQueue: config.COUNTERSIGN_TASK_QUEUE,
  ...workflowsPath(config.COUNTERSIGN_WORKFLOW_BUNDLE, (msg) => log('warn', msg)),
  activities: createActivities({
    db,
    keysDir: config.keysDir,
    attestationSecret: config.COUNTERSIGN_ATTESTATION_SECRET,
    callbackAllowPrivate: config.COUNTERSIGN_CALLBACK_ALLOW_PRIVATE,
    crashAt: config.COUNTERSIGN_CRASH_AT,
  }),
});
log('info', 'worker started', { task_queue: config.COUNTERSIGN_TASK_QUEUE, temporal: config.TEMPORAL_ADDRESS });
await worker.run(); // resolves after SIGINT/SIGTERM, which the SDK handles by shutting down gracefully
await connection.close();
await db.end();
log('info', 'worker stopped');
