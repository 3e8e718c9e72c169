import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startProcess } from '../int/harness.ts';

// A process that refuses to start says why in its last line, just before it exits (the publisher refusing
// Kafka's credentials, say). Node emits a child's 'exit' when the process ends, possibly before the last of its
// output has been read from the pipe; the harness must report what the process wrote, all of it.
describe('startProcess, for a process that exits before it is ready', () => {
  it('reports everything the process wrote, even what reaches the pipe after it has exited', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cs-harness-'));
    // The process hands its standard error to a child of its own and exits at once; the child writes the last
    // line a moment later. The pipe closes only then: output arriving after 'exit', made certain.
    const late = path.join(dir, 'late.mjs');
    writeFileSync(late, "setTimeout(() => process.stderr.write('refusing to start: the last line\\n'), 300);\n");
    const entry = path.join(dir, 'refuses.mjs');
    writeFileSync(entry, [
      "import { spawn } from 'node:child_process';",
      "process.stderr.write('starting\\n');",
      `spawn(process.execPath, [${JSON.stringify(late)}], { stdio: ['ignore', 'ignore', 'inherit'], detached: true }).unref();`,
      'process.exit(1);',
    ].join('\n'));
    const err = await startProcess('refuser', entry, {}, /never ready/, 20_000).then(() => null, (e: Error) => e);
    expect(err?.message).toMatch(/exited \(1\) before ready/);
    expect(err?.message).toMatch(/starting\n[\s\S]*refusing to start: the last line/);
  });
});
