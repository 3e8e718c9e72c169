// Entry of a log-generating thread (bench/replay-million.ts): registers tsx, then runs the generator.
import { register } from 'tsx/esm/api';

register();
await import('./replay-gen-worker.ts');
