import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { ENTRIES } from '../../../services/build/build.ts';
import { CONFIG_FIELDS } from '../../../services/config.ts';

const ROOT = path.resolve(import.meta.dirname, '..', '..', '..');
const CHART = path.join(ROOT, 'deploy', 'helm', 'countersign');

// The checkers are built from the Go module proxy by services/stack/k8s-tools.sh (make test runs it first).
function tools(): { helm: string; kubeconform: string; schemas: string } | null {
  const env = Object.fromEntries(execFileSync('bash', [path.join(ROOT, 'services/stack/k8s-tools.sh'), 'env'], { encoding: 'utf8' })
    .split('\n').map((l) => /^export (\w+)='(.*)'$/.exec(l)).filter((m) => m !== null).map((m) => [m[1]!, m[2]!]));
  const t = { helm: process.env['COUNTERSIGN_HELM'] ?? env['COUNTERSIGN_HELM']!, kubeconform: process.env['COUNTERSIGN_KUBECONFORM'] ?? env['COUNTERSIGN_KUBECONFORM']!, schemas: process.env['COUNTERSIGN_K8S_SCHEMAS'] ?? env['COUNTERSIGN_K8S_SCHEMAS']! };
  return existsSync(t.helm) && existsSync(t.kubeconform) && existsSync(path.join(t.schemas, 'deployment-apps-v1.json')) ? t : null;
}
const t = tools();
// Under CI a missing checker is a failure, not a skip (make test builds them).
if (!t && process.env['CI']) throw new Error('the Kubernetes checkers are missing: run bash services/stack/k8s-tools.sh ensure');
const suite = t ? describe : describe.skip;

const VALUES = ['--set', 'secretEnv.values.DATABASE_URL=postgres://app:pw@db:5432/countersign', '--set', 'secretEnv.values.DATABASE_ADMIN_URL=postgres://owner:pw@db:5432/countersign'];
// A helm built with `go install` carries no Kubernetes version of its own (it assumes 1.20): name the one checked.
const KUBE_VERSION = '1.33.0';
const helm = (args: string[]) => spawnSync(t!.helm, [...args, '--kube-version', KUBE_VERSION], { encoding: 'utf8', env: { PATH: process.env['PATH'], HOME: '/tmp', HELM_CACHE_HOME: '/tmp/.helm-cache', HELM_CONFIG_HOME: '/tmp/.helm-config', HELM_DATA_HOME: '/tmp/.helm-data' } });
const kubeconform = (manifests: string) => spawnSync(t!.kubeconform, ['-strict', '-summary', '-schema-location', path.join(t!.schemas, '{{ .ResourceKind }}{{ .KindSuffix }}.json'), '-'], { input: manifests, encoding: 'utf8' });

type Doc = { kind: string; metadata: { name: string; annotations?: Record<string, string> }; data?: Record<string, string>; stringData?: Record<string, string>; spec?: any };
const render = (extra: string[] = []) => {
  const r = helm(['template', 'cs', CHART, '--namespace', 'countersign', ...VALUES, ...extra]);
  if (r.status !== 0) throw new Error(r.stderr);
  return { text: r.stdout, docs: parseAllDocuments(r.stdout).map((d) => d.toJS() as Doc).filter(Boolean) };
};

suite('the Helm chart (deploy/helm/countersign), checked by helm lint and kubeconform', { timeout: 120_000 }, () => {
  it('lints clean (helm lint --strict)', () => {
    const r = helm(['lint', '--strict', CHART, ...VALUES]);
    expect(r.stdout + r.stderr, r.stdout + r.stderr).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
    expect(r.status).toBe(0);
  });

  it('renders manifests that kubeconform validates strictly against the Kubernetes schemas', () => {
    const { text, docs } = render();
    const r = kubeconform(text);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`${docs.length} resources found.*Valid: ${docs.length}, Invalid: 0, Errors: 0, Skipped: 0`));
    expect(docs.map((d) => `${d.kind}/${d.metadata.name}`).sort()).toEqual([
      'ConfigMap/cs-countersign', 'Deployment/cs-countersign-api', 'Deployment/cs-countersign-publisher', 'Deployment/cs-countersign-worker',
      'Job/cs-countersign-migrate', 'PodDisruptionBudget/cs-countersign-api', 'PodDisruptionBudget/cs-countersign-publisher', 'PodDisruptionBudget/cs-countersign-worker',
      'Secret/cs-countersign-admin', 'Secret/cs-countersign-env', 'Service/cs-countersign-api', 'Service/cs-countersign-publisher-metrics', 'Service/cs-countersign-worker-metrics', 'ServiceAccount/cs-countersign',
    ]);
  });

  it('the schema check is real: a misspelt field, a wrong type or a bad quantity is refused', () => {
    const { text } = render();
    const attacks = [
      text.replace('readinessProbe:', 'readinesProbe:'),
      text.replace(/replicas: 2/, 'replicas: "two"'),
      text.replace(/memory: 512Mi/, 'memory: lots'),
      text.replace(/containerPort: 8080/, 'containerPort: http'),
    ];
    let through = 0;
    for (const a of attacks) {
      expect(a).not.toBe(text);
      if (kubeconform(a).status === 0) through += 1;
    }
    console.log(`attack invalid-manifest: ${attacks.length} attempts, ${through} got through`);
    expect(through).toBe(0);
  });

  it('runs each process from the image as built JavaScript, probed on /healthz and /readyz at the port it serves', () => {
    const { docs } = render();
    const config = docs.find((d) => d.kind === 'ConfigMap')!.data!;
    const ports: Record<string, string> = { api: config['COUNTERSIGN_PORT']!, worker: config['COUNTERSIGN_WORKER_METRICS_PORT']!, publisher: config['COUNTERSIGN_PUBLISHER_METRICS_PORT']! };
    for (const component of ['api', 'worker', 'publisher']) {
      const d = docs.find((x) => x.kind === 'Deployment' && x.metadata.name === `cs-countersign-${component}`)!;
      const pod = d.spec.template.spec;
      const c = pod.containers[0];
      expect(c.args).toEqual([`dist/${component}.mjs`]);
      expect(Object.keys(ENTRIES)).toContain(`${component}.mjs`);
      expect(JSON.stringify(c)).not.toMatch(/tsx|\.ts"/);
      const port = c.ports.find((p: { name: string }) => p.name === c.readinessProbe.httpGet.port);
      expect(String(port.containerPort), component).toBe(ports[component]);
      expect(c.livenessProbe.httpGet.path).toBe('/healthz');
      expect(c.readinessProbe.httpGet.path).toBe('/readyz');
      expect(c.resources.requests.cpu).toBeTruthy();
      expect(c.resources.limits.memory).toBeTruthy();
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001 });
      expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
      expect(d.spec.replicas).toBeGreaterThanOrEqual(2);
    }
    expect(config['COUNTERSIGN_HOST']).toBe('0.0.0.0');
  });

  it('gives the keyring only to the processes that sign (API, worker), at mode 0600 in a memory volume', () => {
    const { docs } = render();
    const pod = (c: string) => docs.find((x) => x.kind === 'Deployment' && x.metadata.name === `cs-countersign-${c}`)!.spec.template.spec;
    for (const c of ['api', 'worker']) {
      expect(pod(c).volumes).toEqual(expect.arrayContaining([{ name: 'keys-secret', secret: { secretName: 'countersign-keys', defaultMode: 0o400 /* 256 */ } }, { name: 'keys', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } }]));
      expect(pod(c).initContainers[0].command.join(' ')).toMatch(/chmod 0600/);
      expect(pod(c).containers[0].volumeMounts).toContainEqual({ name: 'keys', mountPath: '/keys', readOnly: true });
    }
    expect(JSON.stringify(pod('publisher'))).not.toMatch(/keys/);
    expect(docs.find((d) => d.kind === 'ConfigMap')!.data!['COUNTERSIGN_KEYS_DIR']).toBe('/keys');
  });

  it('configures only variables services/config.ts knows; the migration job runs first, as the schema owner', () => {
    const { docs } = render(['--set', 'secretEnv.values.COUNTERSIGN_SLACK_BOT_TOKEN=xoxb-1']);
    const names = [...Object.keys(docs.find((d) => d.kind === 'ConfigMap')!.data!), ...Object.keys(docs.find((d) => d.kind === 'Secret')!.stringData!)];
    for (const n of names) expect(Object.keys(CONFIG_FIELDS), n).toContain(n);
    const job = docs.find((d) => d.kind === 'Job')!;
    expect(job.metadata.annotations!['helm.sh/hook']).toBe('pre-install,pre-upgrade');
    expect(job.spec.template.spec.containers[0].args).toEqual(['dist/migrate.mjs']);
    // A pre-install hook runs before the chart's ServiceAccount exists: the job names none.
    expect(job.spec.template.spec.serviceAccountName).toBeUndefined();
    // The Secret it reads is made before it (a lower hook weight).
    const secret = docs.find((d) => d.kind === 'Secret')!;
    expect(Number(secret.metadata.annotations!['helm.sh/hook-weight'])).toBeLessThan(Number(job.metadata.annotations!['helm.sh/hook-weight']));
  });

  it('gives the schema owner\'s URL to the migration job only, in a Secret of its own', () => {
    const { docs, text } = render();
    const secret = (name: string) => docs.find((d) => d.kind === 'Secret' && d.metadata.name === name)!;
    expect(Object.keys(secret('cs-countersign-env').stringData!)).not.toContain('DATABASE_ADMIN_URL');
    expect(Object.keys(secret('cs-countersign-admin').stringData!)).toEqual(['DATABASE_ADMIN_URL']);
    const refs = (d: Doc) => JSON.stringify(d.spec.template.spec);
    for (const c of ['api', 'worker', 'publisher']) expect(refs(docs.find((d) => d.metadata.name === `cs-countersign-${c}` && d.kind === 'Deployment')!), c).not.toMatch(/countersign-admin/);
    expect(refs(docs.find((d) => d.kind === 'Job')!)).toMatch(/countersign-admin/);
    expect(text.match(/DATABASE_ADMIN_URL/g)).toHaveLength(1);
    // A Secret of the operator's instead: named, not made.
    const existing = render(['--set', 'adminSecret.existingSecret=owner-db']).docs;
    expect(existing.map((d) => d.metadata.name)).not.toContain('cs-countersign-admin');
    expect(refs(existing.find((d) => d.kind === 'Job')!)).toMatch(/"owner-db"/);
  });

  it('exports traces to the configured OTLP receiver from every process, and nowhere without one', () => {
    const config = (extra: string[]) => render(extra).docs.find((d) => d.kind === 'ConfigMap')!.data!;
    expect(Object.keys(config([])).filter((k) => k.startsWith('OTEL_'))).toEqual([]);
    const traced = config(['--set', 'tracing.endpoint=http://otel-collector.observability:4318', '--set', 'tracing.protocol=http/json']);
    expect(traced['OTEL_EXPORTER_OTLP_ENDPOINT']).toBe('http://otel-collector.observability:4318');
    expect(traced['OTEL_EXPORTER_OTLP_PROTOCOL']).toBe('http/json');
    for (const [k, v] of Object.entries(traced).filter(([n]) => n.startsWith('OTEL_'))) expect(CONFIG_FIELDS[k as keyof typeof CONFIG_FIELDS].safeParse(v).success, k).toBe(true);
  });

  it('refuses to render without the database URL or the keys Secret', () => {
    const noDb = helm(['template', 'cs', CHART]);
    expect(noDb.status).not.toBe(0);
    expect(noDb.stderr).toMatch(/secretEnv\.values\.DATABASE_URL/);
    const noKeys = helm(['template', 'cs', CHART, ...VALUES, '--set', 'keys.existingSecret=']);
    expect(noKeys.status).not.toBe(0);
    expect(noKeys.stderr).toMatch(/keys\.existingSecret/);
    // An existing Secret instead of values: the chart makes none.
    const existing = helm(['template', 'cs', CHART, '--set', 'secretEnv.existingSecret=my-env']);
    expect(existing.status, existing.stderr).toBe(0);
    expect(existing.stdout).not.toMatch(/kind: Secret/);
    expect(existing.stdout).toMatch(/name: my-env/);
  });
});
