// Records the decision workflow's approval-channel branch for the replay tier:
//   eval "$(services/stack/stack.sh env)"; npx tsx test/histories/record-channel-histories.ts
// One run down the reminder and notice paths: a reminder before the first deadline, the escalation (its notice
// sent after the escalation is in the log), a reminder before the escalated deadline, expiry, and the closing
// notice. Writes test/fixtures/histories/channels-remind-escalate-expire.json, replacing the recorded one
// (record-histories.ts records the other branches).
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Client, Connection } from '@temporalio/client';
import { workflowIdFor } from '../../services/decisions/ids.ts';
import { activateYaml, addPrincipal, api, startTestStack } from '../int/harness.ts';

const OUT = path.join(import.meta.dirname, '..', 'fixtures', 'histories', 'channels-remind-escalate-expire.json');
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
  // Activity inputs and local activity markers carry their payloads as base64 JSON.
  const decoded = JSON.stringify(events).match(/"data":\s*"[A-Za-z0-9+/=]+"/g)?.map((d) => Buffer.from(d.split('"')[3]!, 'base64').toString('utf8')).join('\n') ?? '';
  if (!decoded.includes('"purpose":"reminder"')) throw new Error('no reminder was sent');
  if (!decoded.includes('"purpose":"escalation"')) throw new Error('no escalation notice was sent');
  if (!JSON.stringify(events).includes('announceRoundClosed')) throw new Error('no closing notice was sent');
  writeFileSync(OUT, json.endsWith('\n') ? json : `${json}\n`);
  process.stdout.write(`recorded ${path.basename(OUT)} (${events.length} events)\n`);
} finally {
  await connection.close();
  await stack.stop();
}
