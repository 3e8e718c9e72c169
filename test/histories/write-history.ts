// Writes a finished run's history for the replay tier, as the recorders all do.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import type { Client } from '@temporalio/client';

/** Waits for the run to finish, then writes its history to `file`; answers how many events it has. */
export async function writeHistory(client: Client, address: string, workflowId: string, file: string): Promise<{ json: string; events: number }> {
  await client.workflow.getHandle(workflowId).result();
  return saveHistory(address, workflowId, file);
}

/** Writes a run's history as it stands (finished or not) to `file`. */
export function saveHistory(address: string, workflowId: string, file: string): { json: string; events: number } {
  // The CLI writes the proto3 JSON form that historyFromJSON reads (the SDK's own writer trips over two copies of
  // protobufjs in the dependency tree).
  const json = execFileSync(process.env['TEMPORAL_CLI'] ?? 'temporal', ['workflow', 'show', '--address', address, '--workflow-id', workflowId, '--output', 'json'], { encoding: 'utf8' });
  writeFileSync(file, json.endsWith('\n') ? json : `${json}\n`);
  return { json, events: (JSON.parse(json) as { events: unknown[] }).events.length };
}
