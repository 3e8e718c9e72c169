/** One problem with a policy, located as precisely as we can: file, line and column when the text is known. */
export type PolicyError = { file?: string; line?: number; col?: number; path: string; message: string };

export type IssuePath = readonly (string | number)[];

/** `rules[2].match.tool`: the form users see in messages and the CLI. */
export function formatPath(path: IssuePath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? seg : `.${seg}`;
  }
  return out;
}

/** `FILE:LINE:COL message` (falls back to the path when the position is unknown). */
export function formatPolicyError(e: PolicyError): string {
  const where = e.file === undefined ? '' : e.line === undefined ? `${e.file}: ` : `${e.file}:${e.line}:${e.col ?? 1} `;
  const at = e.path === '' ? '' : `${e.path}: `;
  return `${where}${at}${e.message}`;
}
