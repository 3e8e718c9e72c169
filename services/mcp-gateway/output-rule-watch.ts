import { compileGlob } from '../policy/glob.ts';
import type { Transport } from '../sdk/transport.ts';
import type { Logger } from './governed-call.ts';

/**
 * Whether an output rule (`on: outcome`) of the tenant's active policies may apply to a tool, so the gateway
 * waits for the run's outcome check (and withholds a violating result) only where one may. Waiting costs an
 * update round trip on the run, and most calls have no output rule. Pure part: `outputRuleMayApply`.
 *
 * Conservative everywhere: a rule whose match names no tool or operation may apply; a natural-language rule
 * (`text`) may apply (its compiled form is not in the document); until the first read succeeds, or after a
 * failed one, every tool may. Only `tool` and `operation` are read: other match keys can only narrow.
 */
export function outputRuleMayApply(documents: unknown[], upstream: string, tool: string): boolean {
  const hits = (pattern: unknown, value: string) =>
    pattern === undefined || (typeof pattern === 'string' ? compileGlob(pattern)(value) : Array.isArray(pattern) ? pattern.some((p) => typeof p === 'string' && compileGlob(p)(value)) : true);
  for (const doc of documents) {
    const rules = (doc as { rules?: unknown })?.rules;
    if (!Array.isArray(rules)) continue;
    for (const r of rules as Array<Record<string, unknown>>) {
      if (typeof r !== 'object' || r === null) continue;
      if (typeof r['text'] === 'string') return true;
      if (r['on'] !== 'outcome') continue;
      const match = (r['match'] ?? {}) as Record<string, unknown>;
      if (hits(match['tool'], upstream) && hits(match['operation'], tool)) return true;
    }
  }
  return false;
}

/** Reads the tenant's active policy documents (GET /v1/policies, any role) every `refreshSec`, off the call path. */
export class OutputRuleWatch {
  private documents: unknown[] | null = null;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly api: Transport, private readonly refreshSec: number, private readonly log: Logger) {}

  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => { void this.refresh(); }, this.refreshSec * 1000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  mayApply(upstream: string, tool: string): boolean {
    return this.documents === null || outputRuleMayApply(this.documents, upstream, tool);
  }

  private async refresh(): Promise<void> {
    try {
      const list = await this.api.request<{ items: Array<{ id: string; active_version: number | null }> }>('GET', '/v1/policies');
      const docs = await Promise.all(list.items.filter((p) => p.active_version !== null).map(async (p) =>
        (await this.api.request<{ active: { document: unknown } | null }>('GET', `/v1/policies/${encodeURIComponent(p.id)}`)).active?.document));
      this.documents = docs.filter((d) => d !== undefined);
    } catch (err) {
      if (this.documents !== null) this.log(`active policies could not be read (${err instanceof Error ? err.message : String(err)}); waiting for every outcome check until they can`);
      this.documents = null;
    }
  }
}
