import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT, freePort } from './harness.ts';

/** One span as Jaeger's query API answers it (GET /api/traces/{id}), with its process's service name. */
export type JaegerSpan = { traceID: string; spanID: string; operationName: string; service: string; parents: string[]; tags: Record<string, unknown> };

/** Jaeger's binary, built from the Go module proxy by services/stack/otlp-receiver.sh (make test runs it first). */
export function jaegerBinary(): string | null {
  const out = execFileSync('bash', [path.join(ROOT, 'services/stack/otlp-receiver.sh'), 'env'], { encoding: 'utf8' });
  const bin = process.env['COUNTERSIGN_JAEGER'] ?? /^export COUNTERSIGN_JAEGER='(.*)'$/m.exec(out)?.[1];
  return bin && existsSync(bin) ? bin : null;
}

/**
 * A real OTLP receiver: Jaeger with its in-memory store, the OTLP/HTTP receiver and the query API, each on a
 * port of its own (nothing else of Jaeger's listens), started for one test file.
 */
export async function startJaeger(bin: string): Promise<{ otlpUrl: string; trace: (id: string) => Promise<JaegerSpan[]>; stop: () => Promise<void> }> {
  const [otlp, query, queryGrpc, health] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const dir = mkdtempSync(path.join(tmpdir(), 'cs-jaeger-'));
  const config = path.join(dir, 'config.yaml');
  writeFileSync(config, `
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:${health}
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:${query}
    grpc:
      endpoint: 127.0.0.1:${queryGrpc}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:${otlp}
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`);
  const child: ChildProcess = spawn(bin, ['--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => { output += d.toString(); });
  child.stderr?.on('data', (d: Buffer) => { output += d.toString(); });
  const stop = async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => { child.once('exit', r); setTimeout(r, 5_000); });
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`jaeger exited (${child.exitCode}):\n${output.slice(-4000)}`);
    const ok = await fetch(`http://127.0.0.1:${query}/api/services`).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`jaeger did not answer within 60 s:\n${output.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    otlpUrl: `http://127.0.0.1:${otlp}`,
    async trace(id) {
      const res = await fetch(`http://127.0.0.1:${query}/api/traces/${id}`);
      if (res.status === 404) return [];
      const body = await res.json() as { data?: Array<{ spans: Array<{ traceID: string; spanID: string; operationName: string; processID: string; references?: Array<{ spanID: string }>; tags?: Array<{ key: string; value: unknown }> }>; processes: Record<string, { serviceName: string }> }> };
      return (body.data ?? []).flatMap((t) => t.spans.map((s) => ({
        traceID: s.traceID,
        spanID: s.spanID,
        operationName: s.operationName,
        service: t.processes[s.processID]?.serviceName ?? '?',
        parents: (s.references ?? []).map((r) => r.spanID),
        tags: Object.fromEntries((s.tags ?? []).map((t) => [t.key, t.value])),
      })));
    },
    stop,
  };
}
