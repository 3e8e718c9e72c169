// Entry of a crypto-floor thread (bench/lib/crypto-floor.ts): registers tsx, as the replay's own threads do, so
// the floor hashes with the same canonical JSON code as replay.
import { register } from 'tsx/esm/api';

register();
await import('./crypto-floor-worker.ts');
