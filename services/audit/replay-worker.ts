import { workerData } from 'node:worker_threads';
import { ReplayShard } from './replay-shard.ts';
import { ANSWERED, PROGRESS, type ShardReply, type ShardRequest, type ShardThreadData } from './replay-threads.ts';

/**
 * One shard of the auditor's replay on its own thread (replay-threads.ts): records arrive in batches while
 * the source is read; every other request is answered on the same port, then signalled through shared memory
 * so the caller, blocked in a synchronous finish(), wakes. Never throws: a failure is answered as one.
 */
const { shard: me, port, signals } = workerData as ShardThreadData;
const words = new Int32Array(signals);
/** The shard of the replay under way (a thread serves one replay after the other). */
let shard: ReplayShard | null = null;
const progress = () => { Atomics.add(words, 2 * me + PROGRESS, 1); };
let steps = 0;
const tick = () => { if (++steps % 64 === 0) progress(); };

function answer(reply: ShardReply, transfer: ArrayBuffer[] = []): void {
  port.postMessage(reply, transfer);
  Atomics.add(words, 2 * me + ANSWERED, 1);
  Atomics.notify(words, 2 * me + ANSWERED);
}

port.on('message', (m: ShardRequest) => {
  try {
    if (m.op === 'begin') {
      shard = new ReplayShard(m.opts);
      return;
    }
    if (m.op === 'end') {
      shard = null;
      return;
    }
    if (!shard) throw new Error(`${m.op} outside a replay`);
    switch (m.op) {
      case 'records':
        for (let i = 0; i < m.values.length; i++) shard.add(m.first[i]!, m.values[i] ?? null, m.wheres[i]!, m.late);
        progress();
        return;
      case 'misrouted': return answer({ ok: true, value: shard.takeMisrouted() });
      case 'fingerprints': {
        const f = shard.fingerprints();
        return answer({ ok: true, value: f }, [f.buffer as ArrayBuffer]);
      }
      case 'copies': return answer({ ok: true, value: shard.copies(m.fingerprints) });
      case 'fold': return answer({ ok: true, value: shard.fold(m.contested, tick) });
      case 'runs': return answer({ ok: true, value: shard.checkRuns(m.facts, m.nowMs, tick) });
    }
  } catch (err) {
    answer({ ok: false, error: err instanceof Error ? err.stack ?? err.message : String(err) });
  }
});
