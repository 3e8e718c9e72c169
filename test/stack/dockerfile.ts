// A small reader of our Dockerfile (no Docker engine here): its stages and instructions, and the runtime stage's
// layout laid out on disk from a build, so tests can check what the image promises without building it.
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

export type Instruction = { op: string; args: string; flags: Record<string, string> };
export type Stage = { name: string; from: string; instructions: Instruction[] };

/** The Dockerfile's stages, in order, each with its instructions (continuations joined, comments dropped). */
export function parseDockerfile(text: string): Stage[] {
  const lines = text.replace(/\\\r?\n/g, ' ').split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const stages: Stage[] = [];
  for (const line of lines) {
    const m = /^(\w+)\s+(.*)$/.exec(line);
    if (!m) throw new Error(`unreadable Dockerfile line: ${line}`);
    const op = m[1]!.toUpperCase();
    let rest = m[2]!;
    const flags: Record<string, string> = {};
    for (let f = /^--([\w-]+)=(\S+)\s+/.exec(rest); f; f = /^--([\w-]+)=(\S+)\s+/.exec(rest)) {
      flags[f[1]!] = f[2]!;
      rest = rest.slice(f[0].length);
    }
    if (op === 'FROM') {
      const fm = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
      stages.push({ name: fm?.[2] ?? String(stages.length), from: fm?.[1] ?? rest, instructions: [] });
      continue;
    }
    if (op === 'ARG' && stages.length === 0) continue; // ARGs before the first FROM
    const stage = stages.at(-1);
    if (!stage) throw new Error(`${op} before the first FROM`);
    stage.instructions.push({ op, args: rest, flags });
  }
  return stages;
}

/** The exec form's words (`["node", "dist/api.mjs"]`), or the shell form split on spaces. */
export function words(args: string): string[] {
  return args.startsWith('[') ? JSON.parse(args) as string[] : args.split(/\s+/);
}

/** COPY instructions of a stage taken from another stage: sources (relative to that stage's /app) and target. */
export function copiesFrom(stage: Stage, from: string): Array<{ sources: string[]; target: string }> {
  return stage.instructions
    .filter((i) => i.op === 'COPY' && i.flags['from'] === from)
    .map((i) => {
      const w = words(i.args);
      return { sources: w.slice(0, -1).map((s) => s.replace(/^\/app\//, '')), target: w.at(-1)!.replace(/^\.\//, '').replace(/^\/app\//, '') };
    });
}

/** Expands a source of COPY (a path, or a `*` glob in its last part) against a folder. */
export function expand(root: string, source: string): string[] {
  const dir = path.dirname(source);
  const base = path.basename(source);
  if (!base.includes('*')) return existsSync(path.join(root, source)) ? [source] : [];
  const re = new RegExp(`^${base.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]*')}$`);
  if (!existsSync(path.join(root, dir))) return [];
  return readdirSync(path.join(root, dir)).filter((f) => re.test(f)).map((f) => path.join(dir, f));
}

/**
 * Lays out the runtime stage's /app in `app` from the build stage's /app (`buildRoot`): every `COPY --from=build`
 * of the runtime stage, as Docker would copy it. Returns the sources that matched nothing (a broken image).
 */
export function layOutRuntime(stages: Stage[], buildRoot: (source: string) => string, app: string): { missing: string[] } {
  const runtime = stages.at(-1)!;
  const missing: string[] = [];
  for (const { sources, target } of copiesFrom(runtime, 'build')) {
    for (const source of sources) {
      const root = buildRoot(source);
      const found = expand(root, source);
      if (found.length === 0) missing.push(source);
      for (const f of found) {
        const to = target.endsWith('/') ? path.join(app, target, path.basename(f)) : path.join(app, target);
        mkdirSync(path.dirname(to), { recursive: true });
        cpSync(path.join(root, f), to, { recursive: true });
      }
    }
  }
  return { missing };
}

export const readDockerfile = (root: string) => parseDockerfile(readFileSync(path.join(root, 'Dockerfile'), 'utf8'));
