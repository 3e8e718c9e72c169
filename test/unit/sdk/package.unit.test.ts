import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildSdk, SDK_DIR } from '../../../services/build/sdk.ts';

const ROOT = path.resolve(import.meta.dirname, '..', '..', '..');
const npm = (args: string[], cwd: string) => execFileSync('npm', args, { cwd, encoding: 'utf8', env: { ...process.env, npm_config_update_notifier: 'false' } });

// An agent's project: the SDK installed from its packed tarball, with nothing of the server. Type-checked by
// the TypeScript compiler against the package's own declarations (skipLibCheck off), then run with node.
const APP_TS = `import { Countersign, DecisionDenied, type DecisionRequestInput, type DecisionResult } from '@countersign/sdk';
const cs = new Countersign({ url: 'http://countersign.invalid', apiKey: 'cs_test' });
const request: DecisionRequestInput = { agent: { id: 'pay-bot' }, action: { tool: 'payment_tool', operation: 'Refund' }, context: { amount: 5 } };
export async function ask(): Promise<DecisionResult['decision'] | string> {
  try {
    return (await cs.decide(request)).decision;
  } catch (err) {
    if (err instanceof DecisionDenied) return err.reasonCode ?? err.reason;
    throw err;
  }
}
// @ts-expect-error: the request's action needs a tool (the declarations carry the contract's types, not any)
export const wrong: DecisionRequestInput = { action: { operation: 'Refund' } };
`;

const APP_MJS = `import { Countersign, DecisionDenied } from '@countersign/sdk';
const answer = { decision_id: 'dec_1', decision: 'DENY', status: 'final', reason: 'no', matched_rule: 'r', matched_rules: [], constraints: {}, snapshot_hash: 'sha256:x' };
const fetch = async (url, init) => new Response(JSON.stringify(url.endsWith('/v1/decisions') ? answer : {}), { status: 200, headers: { 'content-type': 'application/json' } });
const cs = new Countersign({ url: 'http://countersign.invalid', apiKey: 'cs_test', fetch });
const tool = cs.guard(async () => 'ran', () => ({ agent: { id: 'pay-bot' }, action: { tool: 'shell_exec' } }));
try { await tool(); console.log('tool ran'); } catch (err) { console.log(err instanceof DecisionDenied ? 'denied: ' + err.decisionId : 'error: ' + err); }
`;

describe('the SDK as an installable package (@countersign/sdk)', { timeout: 300_000 }, () => {
  const work = mkdtempSync(path.join(tmpdir(), 'cs-sdk-pkg-'));
  const pkg = path.join(work, 'sdk');
  const project = path.join(work, 'agent');
  let imports: string[] = [];
  let tarball = '';
  beforeAll(async () => {
    mkdirSync(pkg);
    for (const f of ['package.json', 'README.md']) copyFileSync(path.join(SDK_DIR, f), path.join(pkg, f));
    ({ imports } = await buildSdk(path.join(pkg, 'dist')));
    const packed = JSON.parse(npm(['pack', '--json', '--pack-destination', work], pkg)) as Array<{ filename: string; files: Array<{ path: string }> }>;
    tarball = path.join(work, packed[0]!.filename);
    mkdirSync(project);
    writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'agent', private: true, type: 'module', dependencies: { '@countersign/sdk': `file:${tarball}` } }));
    // From the npm cache that `npm ci` filled (zod is the only other package); the registry only if it lacks it.
    npm(['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error'], project);
  }, 300_000);

  it('ships built JavaScript and declarations, importing only Node built-ins at run time', () => {
    expect(imports).toEqual(['node:crypto']);
    const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n').filter(Boolean);
    expect(files).toContain('package/dist/index.js');
    expect(files).toContain('package/dist/index.d.ts');
    expect(files.filter((f) => /\.ts$/.test(f) && !f.endsWith('.d.ts'))).toEqual([]);
  });

  it('installs without any server dependency: the project gets the SDK and zod (its types), nothing else', () => {
    expect(readdirSync(path.join(project, 'node_modules')).filter((f) => !f.startsWith('.')).sort()).toEqual(['@countersign', 'zod']);
    const manifest = JSON.parse(execFileSync('tar', ['-xzOf', tarball, 'package/package.json'], { encoding: 'utf8' })) as { dependencies: Record<string, string>; name: string };
    expect(manifest.name).toBe('@countersign/sdk');
    expect(manifest.dependencies).toEqual({ zod: expect.any(String) });
  });

  it('type-checks an agent project against the installed declarations', () => {
    writeFileSync(path.join(project, 'app.ts'), APP_TS);
    writeFileSync(path.join(project, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2023', 'DOM'], types: [], strict: true, noEmit: true, skipLibCheck: false },
      files: ['app.ts'],
    }));
    const tsc = (): { status: number | null; out: string } => {
      const r = spawnSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', project], { encoding: 'utf8' });
      return { status: r.status, out: r.stdout + r.stderr };
    };
    const ok = tsc();
    expect(ok.out).toBe('');
    expect(ok.status).toBe(0);
    // And the same project with a type error fails: the check is real.
    writeFileSync(path.join(project, 'app.ts'), `${APP_TS}\nexport const n: number = (null as unknown as import('@countersign/sdk').DecisionResult).decision;\n`);
    const bad = tsc();
    expect(bad.status).not.toBe(0);
    expect(bad.out).toMatch(/app\.ts\(\d+,\d+\): error TS2322/);
  }, 300_000);

  it('runs: a guarded tool denied by the (fake) API throws DecisionDenied and does not run', () => {
    writeFileSync(path.join(project, 'run.mjs'), APP_MJS);
    expect(execFileSync(process.execPath, ['run.mjs'], { cwd: project, encoding: 'utf8' }).trim()).toBe('denied: dec_1');
  });
});
