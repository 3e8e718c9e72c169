// The no-op worker of bench/decision.ts, in a process of its own as the stack's worker is: the bare side's
// workflow tasks then cost the bench's client nothing, as the stack's cost the agent's client nothing.
//   TEMPORAL_ADDRESS=… BENCH_NOOP_QUEUE=… node --import tsx bench/noop-worker.ts
import path from 'node:path';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';

// tsx turns on source maps, which every stack trace the SDK captures in workflow code then pays for; the stack's
// worker runs prebuilt without them.
process.setSourceMapsEnabled(false);
Runtime.install({ logger: new DefaultLogger('WARN') });
const address = process.env['TEMPORAL_ADDRESS'];
const taskQueue = process.env['BENCH_NOOP_QUEUE'];
if (!address || !taskQueue) throw new Error('TEMPORAL_ADDRESS and BENCH_NOOP_QUEUE must be set');
const connection = await NativeConnection.connect({ address });
const worker = await Worker.create({ connection, taskQueue, workflowsPath: path.join(import.meta.dirname, 'noop-workflow.ts') });
process.once('SIGTERM', () => worker.shutdown());
process.stdout.write('no-op worker ready\n');
await worker.run();
await connection.close();
