import { renameSync, writeFileSync } from 'node:fs';
import { Gauge, Registry } from 'prom-client';

/**
 * The progress of a whole-log `countersign audit replay`, for the operators' dashboards: a batch job is not
 * scraped, so the metrics are written as a Prometheus text file (node_exporter's textfile collector reads it)
 * every few seconds while the replay runs and once when it is done. Written whole, then renamed over the last.
 */
export function replayMetricsFile(file: string, source: string, everyMs = 2_000): { record: () => void; finish: (divergences: number) => Promise<void>; stop: () => void } {
  const registry = new Registry();
  const labels = { source };
  const g = (name: string, help: string) => new Gauge({ name, help, labelNames: ['source'], registers: [registry] });
  const records = g('countersign_audit_replay_records', 'Records read and checked so far by the running (or last) audit replay.');
  const rate = g('countersign_audit_replay_events_per_second', 'Records per second of the audit replay so far.');
  const done = g('countersign_audit_replay_done', '1 once the audit replay has finished, 0 while it runs.');
  const divergences = g('countersign_audit_replay_divergences', 'Divergences the finished audit replay found (0 while it runs).');
  const started = g('countersign_audit_replay_started_timestamp_seconds', 'When the audit replay started (Unix time).');
  const t0 = Date.now();
  let n = 0;
  started.set(labels, t0 / 1000);
  done.set(labels, 0);
  divergences.set(labels, 0);
  // One write after the other: a slow earlier one never lands over a later one.
  let chain = Promise.resolve();
  const write = () => {
    records.set(labels, n);
    const seconds = (Date.now() - t0) / 1000;
    rate.set(labels, seconds > 0 ? n / seconds : 0);
    chain = chain.then(() => registry.metrics()).then((text) => {
      writeFileSync(`${file}.tmp`, text);
      renameSync(`${file}.tmp`, file);
    }, () => {});
    return chain;
  };
  const timer = setInterval(() => void write(), everyMs);
  timer.unref();
  void write();
  return {
    record: () => { n += 1; },
    finish: async (found) => {
      clearInterval(timer);
      done.set(labels, 1);
      divergences.set(labels, found);
      await write();
    },
    stop: () => clearInterval(timer),
  };
}
