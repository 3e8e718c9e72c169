import { ensureApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { CountersignError } from '../../../services/errors.ts';

// Activities retry every failure type but 'CountersignError' (workflows/decision-workflow.ts storeOptions), and
// Temporal names a failure after the thrown error's constructor, not its `name`.
describe('the failure type Temporal gives a CountersignError thrown by an activity', () => {
  it('a dependency outage is its own type, so the activity is retried and the run goes on', () => {
    const failure = ensureApplicationFailure(CountersignError.dependency('postgres', new Error('read ECONNRESET')));
    expect(failure.type).toBe('DependencyUnavailable');
    expect(failure.nonRetryable).toBe(false);
  });

  it('every other CountersignError is CountersignError, which is not retried', () => {
    expect(ensureApplicationFailure(new CountersignError('conflict', 'the stream moved on')).type).toBe('CountersignError');
  });

  it('a dependency outage is still a CountersignError for the API (503 naming the dependency)', () => {
    const err = CountersignError.dependency('temporal');
    expect(err).toBeInstanceOf(CountersignError);
    expect(err).toMatchObject({ code: 'dependency_unavailable', status: 503, extra: { dependency: 'temporal' } });
  });
});
