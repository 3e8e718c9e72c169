import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger, createPinoLogger } from '../../../services/logger.ts';

const ROOT = path.resolve(import.meta.dirname, '..', '..', '..');

// Server code logs through services/logger.ts only. Not server code: the CLI's and the SDK's output to the person
// running them, the console (a browser app), workflows (Temporal's workflow logger), and the one-shot build and
// stack tools whose lines are for whoever runs them.
const NOT_SERVER = [
  'services/cli/', 'services/sdk/', 'services/console/', 'services/build/', 'services/stack/',
  'services/events/migrate-main.ts', 'services/worker/bundle.ts',
];
const ALLOWED = new Set(['services/logger.ts']);
const STRAY = /\bconsole\.(?:log|error|warn|info|debug|trace)\s*\(|\bprocess\.(?:stdout|stderr)\.write\s*\(/;

function sources(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir)).flatMap((f) => {
    const rel = `${dir}/${f}`;
    if (statSync(path.join(ROOT, rel)).isDirectory()) return sources(rel);
    return /\.(?:ts|mjs)$/.test(f) ? [rel] : [];
  });
}

describe('one logger in all server code', () => {
  it('no console.* or raw stdout/stderr writes in services/ and activities/ outside the logger', () => {
    const stray: string[] = [];
    for (const file of [...sources('services'), ...sources('activities')]) {
      if (ALLOWED.has(file) || NOT_SERVER.some((p) => file.startsWith(p))) continue;
      readFileSync(path.join(ROOT, file), 'utf8').split('\n').forEach((line, i) => {
        if (STRAY.test(line) && !line.trim().startsWith('//') && !line.trim().startsWith('*')) stray.push(`${file}:${i + 1}: ${line.trim()}`);
      });
    }
    expect(stray).toEqual([]);
  });

  it('finds a stray line when there is one (the check itself works)', () => {
    expect(STRAY.test("  console.error('boom');")).toBe(true);
    expect(STRAY.test('process.stderr.write(`x`);')).toBe(true);
    expect(STRAY.test("import { registerConsoleRoutes } from './routes/console.ts';")).toBe(false);
  });

  it('every line is JSON with level, time, component and msg, and the same redaction applies to every component', () => {
    const lines: string[] = [];
    const sink = { write: (l: string) => lines.push(l) };
    const key = `cs_abcdefghijkl_${'A'.repeat(43)}`;
    for (const component of ['api', 'worker', 'publisher', 'mcp-gateway']) {
      createLogger(component, 'info', sink)('warn', `failed with ${key}`, {
        url: 'postgres://app:hunter2@db:5432/cs', auth: 'Bearer s3cr3t-token', slack: 'xoxb-123-456-abc', link: '/v1/email-approvals/tok_secret123',
      });
    }
    createPinoLogger('api', 'info', sink).info({ req: { method: 'GET', url: '/v1/email-approvals/tok_x?api_key=1', headers: { authorization: 'Bearer zz' }, socket: {} } }, 'request');
    expect(lines).toHaveLength(5);
    for (const l of lines) {
      const parsed = JSON.parse(l) as Record<string, unknown>;
      expect(parsed).toMatchObject({ level: expect.any(String), time: expect.any(String), component: expect.any(String), msg: expect.any(String) });
      for (const secret of [key, 'hunter2', 's3cr3t-token', 'xoxb-123', 'tok_secret123', 'tok_x', 'zz"']) expect(l).not.toContain(secret);
    }
    expect(createLogger('x', 'warn', sink)).toBeTypeOf('function');
  });
});
