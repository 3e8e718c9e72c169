import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/** The publisher's Prometheus metrics: how far Kafka is behind the log, and whether this process leads. */
export function publisherMetrics(opts: { role: () => string; lag: () => Promise<number> }): { registry: Registry; published: Counter; failures: Counter } {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'countersign_publisher_' });
  new Gauge({
    name: 'countersign_publisher_lag_events',
    help: 'Events committed to the log but not yet acknowledged by Kafka (after the shared checkpoint); -1 while Postgres does not answer.',
    registers: [registry],
    async collect() {
      this.set(await opts.lag().catch(() => -1));
    },
  });
  new Gauge({
    name: 'countersign_publisher_leader',
    help: '1 while this publisher holds the lead (publishes), 0 while it stands by.',
    registers: [registry],
    collect() {
      this.set(opts.role() === 'leader' ? 1 : 0);
    },
  });
  const published = new Counter({ name: 'countersign_publisher_published_events_total', help: 'Events this process sent and Kafka acknowledged.', registers: [registry] });
  const failures = new Counter({ name: 'countersign_publisher_failures_total', help: 'Failed publish attempts (Postgres or Kafka unreachable), each retried with a backoff.', registers: [registry] });
  return { registry, published, failures };
}
