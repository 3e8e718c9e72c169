// CPU seconds per process group, read from /proc (Linux only): where a benchmark's cycles went, so a ratio that
// misses its goal can be traced to the process that spends them instead of guessed at.
import { readdirSync, readFileSync } from 'node:fs';

const TICKS = 100; // USER_HZ on Linux

type Sample = Map<number, { group: string; ticks: number }>;

const groupOf = (cmdline: string): string | null => {
  if (/temporal(\s|$)|\/temporal\b/.test(cmdline) && /server/.test(cmdline)) return 'temporal';
  if (/postgres/.test(cmdline)) return 'postgres';
  if (/kafka/i.test(cmdline) && /java/.test(cmdline)) return 'kafka';
  if (/worker\.mjs|services\/worker/.test(cmdline)) return 'worker';
  if (/services\/api|api\.mjs/.test(cmdline)) return 'api';
  if (/publisher/.test(cmdline)) return 'publisher';
  if (/bench\//.test(cmdline)) return 'bench (client + no-op worker)';
  return null;
};

export function sampleCpu(): Sample {
  const out: Sample = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').replaceAll('\0', ' ');
      const group = groupOf(cmdline);
      if (!group) continue;
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(Number(name), { group, ticks: Number(fields[11]) + Number(fields[12]) });
    } catch {
      // the process ended between readdir and read
    }
  }
  return out;
}

/** CPU seconds per group between two samples (processes that ended in between are lost: short-lived ones undercount). */
export function cpuBetween(before: Sample, after: Sample): Record<string, number> {
  const totals: Record<string, number> = {};
  for (const [pid, a] of after) {
    const b = before.get(pid)?.ticks ?? 0;
    totals[a.group] = (totals[a.group] ?? 0) + (a.ticks - b) / TICKS;
  }
  return totals;
}

/**
 * Waits until this process (every thread) has been nearly idle for a moment, at most `maxMs`: a phase's
 * threads go on collecting garbage after it ends, and that CPU would be billed to the next phase measured.
 * Returns the milliseconds waited.
 */
export async function settle(maxMs = 15_000, windowMs = 250, idleShare = 0.05): Promise<number> {
  const t = performance.now();
  for (;;) {
    const c = process.cpuUsage();
    await new Promise((r) => setTimeout(r, windowMs));
    const u = process.cpuUsage(c);
    if ((u.user + u.system) / 1000 <= windowMs * idleShare || performance.now() - t >= maxMs) return performance.now() - t;
  }
}
