// Entry of a replay shard thread (services/audit/replay-threads.ts) run from the sources: registers tsx, as the CLI's entry does,
// so the thread runs the same TypeScript sources (the same canonical JSON, event hash and checks) as the main thread.
import { register } from 'tsx/esm/api';

register();
await import('./replay-worker.ts');
