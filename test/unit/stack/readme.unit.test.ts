import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_FIELDS } from '../../../services/config.ts';

const ROOT = path.resolve(import.meta.dirname, '..', '..', '..');
const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');

describe('README', () => {
  it('documents every configuration variable in its table', () => {
    for (const name of Object.keys(CONFIG_FIELDS)) expect(readme, name).toMatch(new RegExp(`^\\| \`${name}\` \\|`, 'm'));
  });

  it('gives the two commands, and .ci/run runs exactly the test one', () => {
    expect(readme).toContain('make up');
    expect(readme).toContain('make test');
    expect(readFileSync(path.join(ROOT, '.ci/run'), 'utf8')).toMatch(/^make test$/m);
  });
});
