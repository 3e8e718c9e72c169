/** Structured JSON lines on stderr. Callers pass fields, never secrets: keys, tokens and tool args stay out. */
export type LogFn = (level: 'info' | 'warn' | 'error' | 'debug', msg: string, fields?: Record<string, unknown>) => void;

const RANK = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: 100 } as const;

export function createLogger(component: string, level: keyof typeof RANK = 'info'): LogFn {
  const min = RANK[level];
  return (lvl, msg, fields) => {
    if (RANK[lvl] < min) return;
    process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level: lvl, component, msg, ...fields })}\n`);
  };
}
