import { readFileSync } from 'node:fs';
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

// docker-compose cannot run here (no Docker engine); this keeps it from drifting from the real stack and the image.
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
