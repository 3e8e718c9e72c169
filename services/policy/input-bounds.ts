import type { IssuePath } from './policy-error.ts';

/**
 * Bounds on untrusted policy input. The YAML parser and zod both recurse, and a 10k-deep document
 * exhausts the stack (the yaml package even runs out of memory), so size and depth are checked first,
 * iteratively, before anything recursive sees the input.
 */
export const MAX_POLICY_TEXT_BYTES = 1024 * 1024;
export const MAX_DEPTH = 32;
export const MAX_NODES = 200_000;
export const MAX_STRING_LENGTH = 64 * 1024;

export type BoundsViolation = { path: IssuePath; message: string };

/** Walks a parsed value without recursion; reports the first bound it breaks. */
export function checkValueBounds(value: unknown): BoundsViolation | undefined {
  const stack: { v: unknown; path: (string | number)[] }[] = [{ v: value, path: [] }];
  let nodes = 0;
  while (stack.length > 0) {
    const { v, path } = stack.pop()!;
    if (++nodes > MAX_NODES) return { path: [], message: `document has more than ${MAX_NODES} values` };
    if (typeof v === 'string') {
      if (v.length > MAX_STRING_LENGTH) return { path, message: `string longer than ${MAX_STRING_LENGTH} characters` };
      continue;
    }
    if (v === null || typeof v !== 'object') continue;
    if (path.length >= MAX_DEPTH) return { path, message: `nesting deeper than ${MAX_DEPTH} levels` };
    if (Array.isArray(v)) v.forEach((item, i) => stack.push({ v: item, path: [...path, i] }));
    else for (const [k, item] of Object.entries(v)) stack.push({ v: item, path: [...path, k] });
  }
  return undefined;
}

/**
 * Flow nesting (`[[[[`, `{{{{`) in raw text, counted outside quoted strings and comments. Conservative:
 * it exists to keep pathological input away from the YAML parser, not to parse YAML.
 */
export function textNestingTooDeep(text: string): { offset: number } | undefined {
  let depth = 0;
  let quote: string | undefined;
  let lineStart = true;
  let indentDepth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote !== undefined) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = undefined;
      else if (c === '\n') lineStart = true;
      continue;
    }
    if (c === '\n') {
      lineStart = true;
      indentDepth = 0;
      continue;
    }
    if (lineStart) {
      // Block nesting shows as indentation and compact `- - -` sequences at the start of a line.
      if (c === ' ' || c === '-' || c === '?' || c === ':') {
        if (c !== ' ') indentDepth++;
        if (indentDepth > MAX_DEPTH * 2 || i - text.lastIndexOf('\n', i) > MAX_DEPTH * 8) return { offset: i };
        continue;
      }
      lineStart = false;
    }
    if (c === '#' && (i === 0 || /\s/.test(text[i - 1]!))) {
      const nl = text.indexOf('\n', i);
      if (nl < 0) break;
      i = nl - 1;
    } else if ((c === '"' || c === "'") && (i === 0 || /[\s[{,:]/.test(text[i - 1]!))) quote = c;
    else if (c === '[' || c === '{') {
      if (++depth > MAX_DEPTH) return { offset: i };
    } else if (c === ']' || c === '}') depth = Math.max(0, depth - 1);
  }
  return undefined;
}
