// Entry of a replay-skeleton thread (bench/lib/replay-skeleton.ts): registers tsx, as the replay's own threads do,
// so the skeleton hashes, rebuilds and canonicalises with the same code as replay.
import { register } from 'tsx/esm/api';

register();
await import('./replay-skeleton-worker.ts');
