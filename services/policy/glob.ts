/**
 * Globs where `*` matches any run of characters and nothing else is special. Matching is a greedy
 * left-to-right scan with indexOf, which is correct for star-only patterns and linear in the input:
 * there is no regex, so nothing can backtrack catastrophically.
 */
export type GlobMatcher = (value: string) => boolean;

export function isGlob(pattern: string): boolean {
  return pattern.includes('*');
}

export function compileGlob(pattern: string): GlobMatcher {
  if (!isGlob(pattern)) return (v) => v === pattern;
  if (/^\*+$/.test(pattern)) return () => true;
  const parts = pattern.split('*');
  const first = parts[0]!;
  const last = parts[parts.length - 1]!;
  const middle = parts.slice(1, -1).filter((p) => p !== '');
  const minLength = first.length + last.length;
  return (v) => {
    if (v.length < minLength || !v.startsWith(first) || !v.endsWith(last)) return false;
    let at = first.length;
    const end = v.length - last.length;
    for (const part of middle) {
      const found = v.indexOf(part, at);
      if (found < 0 || found + part.length > end) return false;
      at = found + part.length;
    }
    return true;
  };
}

/** Any of the patterns. */
export function compileGlobList(patterns: readonly string[]): GlobMatcher {
  const exact = new Set(patterns.filter((p) => !isGlob(p)));
  const globs = patterns.filter(isGlob).map(compileGlob);
  if (globs.length === 0) return (v) => exact.has(v);
  return (v) => exact.has(v) || globs.some((g) => g(v));
}
