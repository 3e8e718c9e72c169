// The README's guard example, runnable against `make up`:
//   node --import tsx services/sdk/examples/guard.ts
// Uses COUNTERSIGN_URL (default http://127.0.0.1:8080) and COUNTERSIGN_API_KEY (default: the support-bot agent's
// key that `make up` wrote, .data/agent-key). The key decides as its own agent id.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Countersign, DecisionDenied } from '../index.ts';

const url = process.env['COUNTERSIGN_URL'] ?? 'http://127.0.0.1:8080';
const apiKey = process.env['COUNTERSIGN_API_KEY'] ?? readFileSync(path.resolve(import.meta.dirname, '../../../.data/agent-key'), 'utf8').trim();

const refundTool = async (order: string, amount: number) => ({ refunded: amount, order });

// --- the five lines of the README ---
const cs = new Countersign({ url, apiKey });
const refund = cs.guard(refundTool, (order: string, amount: number) => ({
  agent: { id: 'support-bot' }, action: { tool: 'payment_tool', operation: 'Refund', args: { order } }, context: { amount } }));
console.log('small refund:', await refund('A-17', 120));           // ALLOW: runs, outcome reported
const shell = cs.guard(async () => 'ran', () => ({ agent: { id: 'support-bot' }, action: { tool: 'shell_exec' } }));
try {
  await shell();
} catch (err) {
  if (!(err instanceof DecisionDenied)) throw err;
  console.log(`shell_exec denied: ${err.reason} (decision ${err.decisionId})`); // DENY: typed error, tool not run
}
