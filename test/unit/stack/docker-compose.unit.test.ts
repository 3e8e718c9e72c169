import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { ENTRIES } from '../../../services/build/build.ts';
import { CONFIG_FIELDS } from '../../../services/config.ts';
import { readDockerfile, words } from '../../stack/dockerfile.ts';

const ROOT = path.resolve(import.meta.dirname, '..', '..', '..');
type Service = { environment?: Record<string, unknown>; command?: string[]; entrypoint?: string[]; image?: string; build?: string; ports?: string[]; volumes?: string[] };
const compose = parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, Service> };
const stackScript = readFileSync(path.join(ROOT, 'services/stack/stack.sh'), 'utf8');
const kafkaPom = readFileSync(path.join(ROOT, 'services/stack/kafka/pom.xml'), 'utf8');
const APPS = ['api', 'worker', 'publisher', 'migrate'];

// docker-compose cannot run here (no Docker engine); this keeps it from drifting from the real stack and the image
// (test/int/image.int.test.ts runs its app services from the image itself).
describe('docker-compose.yml describes the same stack as make up, from the one image', () => {
  it('has the three services and the three app processes', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['api', 'kafka', 'migrate', 'postgres', 'publisher', 'temporal', 'worker']);
  });

  it('runs every app process from the image the Dockerfile builds, as built JavaScript', () => {
    const up = readFileSync(path.join(ROOT, 'services/stack/up.sh'), 'utf8');
    const dockerfile = readDockerfile(ROOT).at(-1)!;
    expect(words(dockerfile.instructions.find((i) => i.op === 'ENTRYPOINT')!.args)).toEqual(['node']);
    for (const svc of APPS) {
      expect(compose.services[svc]!.image, svc).toBe('countersign:local');
      expect(compose.services[svc]!.build, svc).toBe('.');
      expect(JSON.stringify(compose.services[svc]!.command), svc).not.toMatch(/tsx|\.ts\b|npm/);
    }
    // The same built entries as make up starts.
    for (const [svc, entry] of [['api', 'dist/api.mjs'], ['worker', 'dist/worker.mjs'], ['publisher', 'dist/publisher.mjs']] as const) {
      expect(compose.services[svc]!.command).toEqual([entry]);
      expect(Object.keys(ENTRIES)).toContain(path.basename(entry));
      expect(up).toContain(`start_app ${svc} "$ROOT/${entry}"`);
    }
    const migrate = (compose.services['migrate']!.command ?? []).join(' ');
    for (const job of ['dist/migrate.mjs', 'dist/init-keys.mjs', 'dist/seed.mjs']) {
      expect(migrate).toContain(`node ${job}`);
      expect(Object.keys(ENTRIES)).toContain(path.basename(job));
    }
  });

  it('gives the keys to the processes that sign, read-only, and none to the publisher', () => {
    expect(compose.services['migrate']!.volumes).toEqual(['countersign-data:/var/lib/countersign']);
    for (const svc of ['api', 'worker']) expect(compose.services[svc]!.volumes, svc).toEqual(['countersign-data:/var/lib/countersign:ro']);
    expect(compose.services['publisher']!.volumes).toEqual([]);
  });

  it('gives the schema owner\'s credentials to the migration job only', () => {
    expect(Object.keys(compose.services['migrate']!.environment ?? {})).toContain('DATABASE_ADMIN_URL');
    for (const svc of ['api', 'worker', 'publisher']) expect(Object.keys(compose.services[svc]!.environment ?? {}), svc).not.toContain('DATABASE_ADMIN_URL');
  });

  it('gives the app processes only configuration variables that services/config.ts knows', () => {
    for (const svc of APPS) {
      const env = Object.keys(compose.services[svc]!.environment ?? {});
      expect(env.length).toBeGreaterThan(0);
      for (const name of env) expect(Object.keys(CONFIG_FIELDS), `${svc}: ${name}`).toContain(name);
    }
    const imageEnv = readDockerfile(ROOT).at(-1)!.instructions.filter((i) => i.op === 'ENV').map((i) => i.args).join(' ');
    for (const [, name] of imageEnv.matchAll(/(\w+)=/g)) if (name !== 'NODE_ENV') expect(Object.keys(CONFIG_FIELDS), name).toContain(name);
  });

  it('passes the tracing variables services/config.ts reads through from the shell to every app process', () => {
    const otel = Object.keys(CONFIG_FIELDS).filter((n) => n.startsWith('OTEL_') && n !== 'OTEL_SERVICE_NAME');
    expect(otel).toContain('OTEL_EXPORTER_OTLP_ENDPOINT');
    for (const svc of APPS) {
      const env = compose.services[svc]!.environment ?? {};
      // No value: compose takes it from its own environment, and leaves it out when unset there.
      for (const name of otel) expect(env[name], `${svc}: ${name}`).toBeNull();
      // Each process names its own service.
      expect(Object.keys(env)).not.toContain('OTEL_SERVICE_NAME');
    }
  });

  it('pins the same Temporal CLI and Kafka versions as the stack script', () => {
    const temporalVersion = /TEMPORAL_CLI_VERSION:-v([\d.]+)/.exec(stackScript)![1];
    expect(compose.services['temporal']!.image).toBe(`temporalio/temporal:${temporalVersion}`);
    const kafkaVersion = /<kafka.version>([\d.]+)<\/kafka.version>/.exec(kafkaPom)![1];
    expect(compose.services['kafka']!.image).toBe(`apache/kafka:${kafkaVersion}`);
    expect(stackScript).toContain(`KAFKA_VERSION="${kafkaVersion}"`);
  });

  it('uses the default ports of the local stack', () => {
    expect(compose.services['temporal']!.ports).toContain('7233:7233');
    expect(compose.services['kafka']!.ports).toContain('9092:9092');
    expect(compose.services['api']!.ports).toContain('8080:8080');
    expect(CONFIG_FIELDS.COUNTERSIGN_PORT.parse(undefined)).toBe(8080);
  });
});

// compose's own loader (compose-spec/compose-go), built by services/stack/compose-check.sh (make test runs it first).
function composeCheck(): string | null {
  const fromScript = /^export COUNTERSIGN_COMPOSE_CHECK='(.*)'$/m.exec(execFileSync('bash', [path.join(ROOT, 'services/stack/compose-check.sh'), 'env'], { encoding: 'utf8' }))?.[1];
  const bin = process.env['COUNTERSIGN_COMPOSE_CHECK'] ?? fromScript;
  return bin && existsSync(bin) ? bin : null;
}
const checker = composeCheck();
// Under CI a missing checker is a failure, not a skip (make test builds it).
if (!checker && process.env['CI']) throw new Error('the Compose checker is missing: run bash services/stack/compose-check.sh ensure');

type Resolved = { services: Record<string, { image?: string; build?: { context: string; dockerfile: string }; environment?: Record<string, string | null>; volumes?: { source: string; target: string; read_only?: boolean }[] }> };
const load = (file: string, env: Record<string, string> = {}) => spawnSync(checker!, [file], { encoding: 'utf8', env: { PATH: process.env['PATH'], ...env } });

(checker ? describe : describe.skip)('docker-compose.yml, loaded by compose\'s own loader (compose-spec/compose-go)', () => {
  it('is valid against the Compose Specification, and resolves to the image the Dockerfile builds', () => {
    const r = load(path.join(ROOT, 'docker-compose.yml'));
    expect(r.status, r.stderr).toBe(0);
    const project = JSON.parse(r.stdout) as Resolved;
    for (const svc of APPS) {
      expect(project.services[svc]!.image, svc).toBe('countersign:local');
      expect(project.services[svc]!.build, svc).toEqual({ context: ROOT, dockerfile: 'Dockerfile' });
    }
    expect(project.services['publisher']!.volumes ?? []).toEqual([]);
    for (const svc of ['api', 'worker']) expect(project.services[svc]!.volumes, svc).toEqual([expect.objectContaining({ source: 'countersign-data', target: '/var/lib/countersign', read_only: true })]);
    for (const svc of ['api', 'worker', 'publisher']) expect(project.services[svc]!.environment, svc).not.toHaveProperty('DATABASE_ADMIN_URL');
  });

  it('hands the shell\'s OTEL_* settings to every app process', () => {
    const r = load(path.join(ROOT, 'docker-compose.yml'), { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel-collector:4318', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' });
    expect(r.status, r.stderr).toBe(0);
    const project = JSON.parse(r.stdout) as Resolved;
    for (const svc of APPS) {
      expect(project.services[svc]!.environment!['OTEL_EXPORTER_OTLP_ENDPOINT'], svc).toBe('http://otel-collector:4318');
      expect(project.services[svc]!.environment!['OTEL_EXPORTER_OTLP_PROTOCOL'], svc).toBe('http/json');
    }
  });

  it('the check is real: a misspelt key, a wrong type or an unknown condition is refused', () => {
    const text = readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8');
    const dir = mkdtempSync(path.join(tmpdir(), 'cs-compose-'));
    const attacks = [
      text.replace('    healthcheck:', '    healthchek:'),
      text.replace('ports: ["8080:8080"]', 'ports: 8080'),
      text.replace('condition: service_completed_successfully', 'condition: service_finished'),
      text.replace('retries: 30', 'retries: lots'),
      text.replace('restart: "no"', 'restart: "no"\n    privileged: maybe'),
    ];
    let through = 0;
    for (const [i, attack] of attacks.entries()) {
      expect(attack, `attack ${i} changes the file`).not.toBe(text);
      const file = path.join(dir, `docker-compose-${i}.yml`);
      writeFileSync(file, attack);
      if (load(file).status === 0) through++;
    }
    console.log(`attack invalid-compose: ${attacks.length} attempts, ${through} got through`);
    expect(through).toBe(0);
  });
});
