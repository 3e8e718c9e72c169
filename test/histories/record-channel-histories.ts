// Records the decision workflow's approval-channel branch (issue 8) for the replay tier:
//   eval "$(services/stack/stack.sh env)"; npx tsx test/histories/record-channel-histories.ts GENERATION
// One run down the paths behind the patches 'reminders', 'flush-before-notify' and 'round-closed-notices':
// a reminder before the first deadline, the escalation (its notice sent after the escalation is in the log),
// a reminder before the escalated deadline, expiry, and the closing notice. Writes
// test/fixtures/histories/GENERATION/channels-remind-escalate-expire.json (record-histories.ts records the other
// branches of a generation), never over an existing file.
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Client, Connection } from '@temporalio/client';
import { workflowIdFor } from '../../services/decisions/ids.ts';
import { activateYaml, addPrincipal, api, startTestStack } from '../int/harness.ts';

const generation = process.argv[2];
if (!generation || !/^[a-z0-9-]+$/.test(generation)) throw new Error('usage: record-channel-histories.ts GENERATION (the folder record-histories.ts wrote)');
const OUT = path.join(import.meta.dirname, '..', 'fixtures', 'histories', generation, 'channels-remind-escalate-expire.json');
if (existsSync(OUT)) throw new Error(`${OUT} exists: a recorded history is never overwritten`);

const POLICY = `
apiVersion: countersign/v1
kind: Policy
metadata: { id: channel-branches, name: Reminders then escalation then expiry }
scope: { level: tenant }
rules:
  - name: remind-escalate-expire
    match: { tool: remind_tool }
    decision: REQUIRE_APPROVAL
    approval: { approvers: [ops], quorum: 1, escalate_after: 4s, timeout: 6s, escalate_to: [leads], on_timeout: DENY }
`;

const stack = await startTestStack({ COUNTERSIGN_REMIND_BEFORE: '50%', COUNTERSIGN_OUTCOME_WINDOW: '2s', COUNTERSIGN_OVERRIDE_WINDOW: '2s' });
const connection = await Connection.connect({ address: stack.env['TEMPORAL_ADDRESS']! });
try {
  await activateYaml(stack, POLICY);
  const agent = await addPrincipal(stack, { name: 'bot', kind: 'agent', roles: ['agent'] });
  await addPrincipal(stack, { name: 'o1', roles: ['approver'], groups: ['ops'] });
  await addPrincipal(stack, { name: 'l1', roles: ['approver'], groups: ['leads'] });
  const res = await api({ url: stack.url, key: agent.key }, 'POST', '/v1/decisions', { agent: { id: 'bot' }, action: { tool: 'remind_tool', args: { x: 1 } } });
  if (res.status !== 200 && res.status !== 201) throw new Error(`decision: ${res.status} ${JSON.stringify(res.body)}`);
  const handle = new Client({ connection }).workflow.getHandle(workflowIdFor('default', res.body.decision_id as string));
  await handle.result();
  const json = execFileSync(process.env['TEMPORAL_CLI'] ?? 'temporal', ['workflow', 'show', '--address', stack.env['TEMPORAL_ADDRESS']!, '--workflow-id', handle.workflowId, '--output', 'json'], { encoding: 'utf8' });
  const events = (JSON.parse(json) as { events: Array<Record<string, any>> }).events;
  // Patch markers carry the patch id in a base64 JSON payload.
  const decoded = JSON.stringify(events).match(/"data":\s*"[A-Za-z0-9+/=]+"/g)?.map((d) => Buffer.from(d.split('"')[3]!, 'base64').toString('utf8')).join('\n') ?? '';
  for (const patch of ['reminders', 'flush-before-notify', 'round-closed-notices']) {
    if (!decoded.includes(`"${patch}"`)) throw new Error(`the run did not take the '${patch}' path`);
  }
  if (!decoded.includes('"purpose":"reminder"')) throw new Error('no reminder was sent');
  writeFileSync(OUT, json.endsWith('\n') ? json : `${json}\n`);
  process.stdout.write(`recorded ${path.basename(OUT)} (${events.length} events)\n`);
} finally {
  await connection.close();
  await stack.stop();
}
