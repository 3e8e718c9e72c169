import { describe, expect, it } from 'vitest';
import { CountersignError } from '../../../services/errors.ts';
import { sendUpdate, updateIdOf } from '../../../services/temporal/send-update.ts';

// The client's own deadline wrapper, as the SDK's runs it: the function, under a deadline it is given.
const client = { withDeadline: <R>(_deadline: number | Date, fn: () => Promise<R>) => fn() };
const recovering = () => new Error('Workflow Task in failed state');

describe('sending a message as a Temporal update', () => {
  it('names the update by the message: the same message sent again joins the update Temporal admitted', () => {
    expect(updateIdOf({ kind: 'policy_review', nonce: 'n-1' })).toBe('policy_review-n-1');
    expect(updateIdOf({ kind: 'answer', nonce: 'n-1' })).not.toBe(updateIdOf({ kind: 'answer', nonce: 'n-2' }));
  });

  it('given a worker recovering the task, when the update is refused twice, then the same update is sent again and its answer returned', async () => {
    let tries = 0;
    const res = await sendUpdate(client, async () => {
      tries += 1;
      if (tries < 3) throw new Error('outer', { cause: recovering() });
      return 'counted';
    }, 5_000, 1);
    expect(res).toBe('counted');
    expect(tries).toBe(3);
  });

  it('given a worker that stays down past the deadline, then a 503 naming Temporal, not the refusal', async () => {
    let tries = 0;
    const err = await sendUpdate(client, async () => { tries += 1; throw recovering(); }, 30, 5).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CountersignError);
    expect((err as CountersignError).code).toBe('dependency_unavailable');
    expect(tries).toBeGreaterThan(1);
  });

  it('given any other failure (the workflow refused the message), then it is the caller’s at once, sent once', async () => {
    let tries = 0;
    const refused = new Error('answer refused: not an approver');
    await expect(sendUpdate(client, async () => { tries += 1; throw refused; }, 5_000, 1)).rejects.toBe(refused);
    expect(tries).toBe(1);
  });
});
