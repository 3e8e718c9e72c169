import type { StoredEvent } from '../../schemas/events.ts';
import { prepareRunStart } from '../../services/decisions/start-attestation.ts';
import { canonicalJson } from '../../services/receipts/canonical.ts';

/**
 * A run's start as the API signed it, from the run's own events: the signed bytes (the start document rebuilt
 * with the digests it covers, in canonical form) and the recorded signature. Null for a stream without a start;
 * a start that does not rebuild is thrown. `validated`: the events' data was checked against its schemas already.
 */
export function signedStart(run: readonly StoredEvent[], validated = false): { bytes: string; key_id: string; value: string } | null {
  const requested = run.find((e) => e.type === 'DecisionRequested');
  const evaluated = run.find((e) => e.type === 'PolicyEvaluated');
  if (!requested || !evaluated) return null;
  const p = prepareRunStart(requested.data, evaluated.data, undefined, { validated });
  if (!p.ok) throw new Error(`${requested.stream_id}: ${p.reason}`);
  const sig = p.signature as { key_id: string; value: string };
  return { bytes: canonicalJson(p.doc), key_id: sig.key_id, value: sig.value };
}
