// Bench-only workflows (bench/decision.ts): the floor a Countersign decision run is compared against.
import { condition, defineUpdate, setHandler } from '@temporalio/workflow';

export const poke = defineUpdate<string>('poke');

/** Does nothing: what a bare `client.workflow.start` costs. */
export async function noop(): Promise<void> {}

/** Waits for one update and answers it: what a bare Temporal update round trip costs. */
export async function waitsForPoke(): Promise<void> {
  let poked = false;
  setHandler(poke, () => {
    poked = true;
    return 'ok';
  });
  await condition(() => poked);
}
