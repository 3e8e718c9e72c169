import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import type { PolicyDocument } from '../../schemas/policy.ts';
import { compileDocument, type DocumentIssue } from './compile-document.ts';
import { MAX_POLICY_TEXT_BYTES, textNestingTooDeep } from './input-bounds.ts';
import { formatPath, type IssuePath, type PolicyError } from './policy-error.ts';
import type { CompiledPolicy } from './snapshot.ts';

/**
 * Policy text (YAML, or JSON, which the YAML parser reads too) to a validated document, with every error
 * located as FILE:LINE:COL. Positions come from the yaml package's node ranges and LineCounter: a path
 * is followed through the YAML tree as far as it exists, and a missing field points at its parent.
 */
type Locate = (path: IssuePath, atKey?: boolean) => { line: number; col: number };
type Parsed = { ok: true; value: unknown; locate: Locate } | { ok: false; errors: PolicyError[] };

function parseYaml(text: string, file: string): Parsed {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_POLICY_TEXT_BYTES) return { ok: false, errors: [{ file, line: 1, col: 1, path: '', message: `policy is ${bytes} bytes; the limit is ${MAX_POLICY_TEXT_BYTES} bytes` }] };
  const lc = new LineCounter();
  const deep = textNestingTooDeep(text);
  if (deep !== undefined) {
    // Count lines only up to the offending offset: the full text is never handed to the parser.
    const before = text.slice(0, deep.offset);
    const line = before.split('\n').length;
    return { ok: false, errors: [{ file, line, col: deep.offset - before.lastIndexOf('\n'), path: '', message: 'nesting too deep: policies may nest at most 32 levels' }] };
  }
  if (text.trim() === '') return { ok: false, errors: [{ file, line: 1, col: 1, path: '', message: 'empty policy file' }] };
  let doc: Document.Parsed;
  try {
    doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: false, strict: true });
  } catch (err) {
    return { ok: false, errors: [{ file, line: 1, col: 1, path: '', message: `could not parse: ${err instanceof Error ? err.message : String(err)}` }] };
  }
  if (doc.errors.length > 0) {
    return {
      ok: false,
      errors: doc.errors.map((e) => {
        const pos = lc.linePos(e.pos[0]);
        return { file, line: pos.line, col: pos.col, path: '', message: e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '') };
      }),
    };
  }
  let value: unknown;
  try {
    // Aliases can expand exponentially ("billion laughs"); cap them.
    value = doc.toJS({ maxAliasCount: 50 });
  } catch (err) {
    return { ok: false, errors: [{ file, line: 1, col: 1, path: '', message: `could not read: ${err instanceof Error ? err.message : String(err)}` }] };
  }
  if (value === null || value === undefined) return { ok: false, errors: [{ file, line: 1, col: 1, path: '', message: 'empty policy file' }] };
  const locate = (path: IssuePath, atKey = false) => {
    let node: Node | null | undefined = doc.contents;
    let offset = node?.range?.[0] ?? 0;
    for (const seg of path) {
      if (isMap(node)) {
        const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === seg);
        if (pair === undefined) break;
        const keyNode = isScalar(pair.key) ? pair.key : undefined;
        // The last segment of an unknown-key error names the key itself: point at the key.
        offset = keyNode?.range?.[0] ?? offset;
        node = pair.value as Node | null;
        if (!(atKey && seg === path[path.length - 1]) && node?.range) offset = node.range[0];
      } else if (isSeq(node) && typeof seg === 'number') {
        const item = node.items[seg] as Node | undefined;
        if (item === undefined) break;
        node = item;
        offset = item.range?.[0] ?? offset;
      } else break;
    }
    return lc.linePos(offset);
  };
  return { ok: true, value, locate };
}

function located(file: string, locate: Locate, issues: DocumentIssue[]): PolicyError[] {
  return issues
    .map((i) => ({ file, ...locate(i.path, i.atKey === true), path: formatPath(i.path), message: i.message }))
    .sort((a, b) => a.line - b.line || a.col - b.col);
}

/** Parses and validates (schema, CEL, natural-language rules) one policy file; every error is reported. */
export function checkPolicyText(text: string, file: string, version = 0): { ok: true; document: PolicyDocument; policy: CompiledPolicy; value: unknown } | { ok: false; errors: PolicyError[] } {
  const parsed = parseYaml(text, file);
  if (!parsed.ok) return parsed;
  const result = compileDocument(parsed.value, version);
  if (!result.ok) return { ok: false, errors: located(file, parsed.locate, result.issues) };
  return { ok: true, document: result.document, policy: result.policy, value: parsed.value };
}

/** Parses and validates one policy text; errors carry file, line and column. */
export function parsePolicyText(text: string, file: string): { ok: true; document: PolicyDocument } | { ok: false; errors: PolicyError[] } {
  const r = checkPolicyText(text, file);
  return r.ok ? { ok: true, document: r.document } : r;
}

/** Parses YAML or JSON data that is not a policy (requests, test suites), with the same bounds. */
export function parseDataText(text: string, file: string): { ok: true; value: unknown; locate: Locate } | { ok: false; errors: PolicyError[] } {
  return parseYaml(text, file);
}
