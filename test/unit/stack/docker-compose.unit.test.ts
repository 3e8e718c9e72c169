import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { CONFIG_FIELDS } from '../../../services/config.ts';

const ROOT = path.resolve(import.meta.dirname, '..', '..', '..');
const compose = parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, { environment?: Record<string, unknown>; command?: string[]; image?: string; ports?: string[] }>;
};
const stackScript = readFileSync(path.join(ROOT, 'services/stack/stack.sh'), 'utf8');
const kafkaPom = readFileSync(path.join(ROOT, 'services/stack/kafka/pom.xml'), 'utf8');

// docker-compose cannot run here (no Docker engine); this keeps it from drifting from the real stack.
describe('docker-compose.yml describes the same stack as make up', () => {
  it('has the three services and the three app processes', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['api', 'kafka', 'migrate', 'postgres', 'publisher', 'temporal', 'worker']);
  });

  it('runs each app process with the same entry point as make up', () => {
    const up = readFileSync(path.join(ROOT, 'services/stack/up.sh'), 'utf8');
    for (const [svc, entry] of [['api', 'services/api/main.ts'], ['publisher', 'services/publisher/main.ts']] as const) {
      expect(compose.services[svc]!.command).toContain(entry);
      expect(up).toContain(entry);
    }
    // The worker runs prebuilt (services/worker/build-entry.ts), from beside the workflow bundle, built by the
    // same bundle step that make up and the compose file's migrate service run.
    expect(compose.services['worker']!.command).toEqual(['node', '/app/.data/worker.mjs']);
    expect(compose.services['worker']!.environment?.['COUNTERSIGN_WORKFLOW_BUNDLE']).toBe('/app/.data/workflow-bundle.js');
    expect(up).toContain('start_app worker "$(dirname "$COUNTERSIGN_WORKFLOW_BUNDLE")/worker.mjs"');
    expect((compose.services['migrate']!.command ?? []).join(' ')).toContain('services/worker/bundle.ts');
  });

  it('gives the app processes only configuration variables that services/config.ts knows', () => {
    for (const svc of ['api', 'worker', 'publisher', 'migrate']) {
      const env = Object.keys(compose.services[svc]!.environment ?? {});
      expect(env.length).toBeGreaterThan(0);
      for (const name of env) expect(Object.keys(CONFIG_FIELDS), `${svc}: ${name}`).toContain(name);
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
