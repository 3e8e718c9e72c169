// Serves the built console (services/console/dist, made by build.ts) with a strict Content-Security-Policy:
// every script and style is a file of this origin, nothing inline, nothing from elsewhere.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { CountersignError } from '../errors.ts';

export const CONSOLE_DIST = path.join(import.meta.dirname, 'dist');
export const CONSOLE_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
/** The console's own paths: each answers index.html, and the page reads its path. */
export const CONSOLE_PAGES = ['/', '/sign-in', '/inbox', '/decisions', '/decisions/:id', '/policies', '/policies/:id', '/agents', '/agents/:id', '/tools', '/members', '/audit'];

const TYPES: Record<string, string> = { '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon', '.json': 'application/json' };

type Files = { index: Buffer; assets: Map<string, { body: Buffer; type: string }> };

function load(dir: string): Files | null {
  if (!existsSync(path.join(dir, 'index.html'))) return null;
  const assets = new Map<string, { body: Buffer; type: string }>();
  const assetDir = path.join(dir, 'assets');
  if (existsSync(assetDir)) {
    for (const name of readdirSync(assetDir)) {
      const type = TYPES[path.extname(name)];
      if (type) assets.set(name, { body: readFileSync(path.join(assetDir, name)), type });
    }
  }
  return { index: readFileSync(path.join(dir, 'index.html')), assets };
}

function secured(reply: FastifyReply): FastifyReply {
  return reply
    .header('content-security-policy', CONSOLE_CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('x-frame-options', 'DENY')
    .header('cross-origin-opener-policy', 'same-origin');
}

export function serveConsole(app: FastifyInstance, dir = CONSOLE_DIST): void {
  // Read once, at the first request: the files are built before the API starts (make up, make test).
  let files: Files | null = null;
  const get = (): Files => {
    files ??= load(dir);
    if (!files) throw new CountersignError('dependency_unavailable', `the console is not built (${dir}): run make up, or node --import tsx services/console/build.ts`, { extra: { dependency: 'console' } });
    return files;
  };
  for (const page of CONSOLE_PAGES) {
    app.get(page, { schema: { hide: true } }, async (_req, reply) => secured(reply).type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(get().index));
  }
  app.get('/assets/:file', { schema: { hide: true } }, async (req, reply) => {
    const name = (req.params as { file: string }).file;
    const asset = get().assets.get(name);
    if (!asset) throw new CountersignError('not_found', `no console asset ${name}`);
    // Vite names each asset by its content's hash: it never changes under the same name.
    return secured(reply).type(asset.type).header('cache-control', 'public, max-age=31536000, immutable').send(asset.body);
  });
}
