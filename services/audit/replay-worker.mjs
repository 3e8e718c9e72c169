// Entry of a replay worker thread (services/audit/replay-pool.ts): registers tsx, as the CLI's entry does,
// so the worker runs the same TypeScript sources (the same canonical JSON and event hash) as the main thread.
import { register } from 'tsx/esm/api';

register();
await import('./replay-worker.ts');
