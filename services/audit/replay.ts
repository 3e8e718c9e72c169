import { isKnownEventType, parseEventData, StoredEvent, type EventData } from '../../schemas/events.ts';
import type { PublicKeySet, SignedReceipt } from '../../schemas/receipt.ts';
import { foldRun, type RunEvent } from '../decisions/run-view.ts';
import { verifyChain } from '../events/hash-chain.ts';
import { compile, evaluate } from '../policy/index.ts';
import { buildReceipt } from '../receipts/build-receipt.ts';
import { sha256Digest } from '../receipts/canonical.ts';
import { verifyDocument } from '../receipts/verify.ts';
import { activationSigned, compilePolicyVersion } from '../lifecycle/policy-version.ts';

export type Divergence = { stream_id: string | null; position: string | null; problem: string };
export type PolicyVersion = { policy_id: string; tenant_id: string; version: number; hash: string; signing_key_id: string | null; position: string };
export type ReplayReport = {
  records: number;
  events: number;
  duplicates: number;
  streams: number;
  runs: number;
  receipts: SignedReceipt[];
  unsigned_runs: string[];
  policies: Record<string, PolicyVersion[]>;
  re_evaluated: number;
  divergences: Divergence[];
};

/** One raw record from a source; `where` says where it sat (a Kafka offset, a Postgres position). */
export type RawRecord = { value: string | null; where: string };

/**
 * The auditor's replay, from one source alone (the Kafka topic, or the Postgres log). Pure over its input:
 * parse and deduplicate records by event id, check each stream's hash chain, rebuild each run's receipt with
 * the same fold the worker used and check the recorded signature against it, and re-derive each decision
 * from the recorded policy snapshot and facts. Every divergence names the first bad position.
 */
export class Replay {
  private readonly byId = new Map<string, StoredEvent>();
  private readonly streams = new Map<string, StoredEvent[]>();
  private records = 0;
  private duplicates = 0;
  private readonly divergences: Divergence[] = [];

  constructor(private readonly opts: { keys: PublicKeySet | null; tenantId?: string | undefined; since?: Date | undefined }) {}

  add(record: RawRecord): void {
    this.records += 1;
    let json: unknown;
    try {
      json = JSON.parse(record.value ?? '');
    } catch {
      this.divergences.push({ stream_id: null, position: record.where, problem: 'record is not JSON' });
      return;
    }
    const parsed = StoredEvent.safeParse(json);
    if (!parsed.success) {
      const i = parsed.error.issues[0]!;
      this.divergences.push({ stream_id: null, position: record.where, problem: `record is not an event: ${i.path.join('.')}: ${i.message}` });
      return;
    }
    const e = parsed.data;
    if (this.opts.tenantId && e.tenant_id !== this.opts.tenantId) return;
    const seen = this.byId.get(e.event_id);
    if (seen) {
      // Transport duplicates are allowed; two different events with one id are not.
      if (seen.hash !== e.hash) this.divergences.push({ stream_id: e.stream_id, position: e.position, problem: `event id ${e.event_id} appears twice with different content` });
      else this.duplicates += 1;
      return;
    }
    this.byId.set(e.event_id, e);
    const list = this.streams.get(e.stream_id) ?? [];
    list.push(e);
    this.streams.set(e.stream_id, list);
  }

  finish(): ReplayReport {
    const policyEvents = new Map<string, EventData<'PolicyActivated'>>(); // `${tenant}/${policy}@${version}`
    const policies: Record<string, PolicyVersion[]> = {};
    const runs: StoredEvent[][] = [];
    for (const [streamId, events] of this.streams) {
      events.sort((a, b) => a.stream_version - b.stream_version);
      const broken = verifyChain(events);
      if (broken) {
        this.divergences.push({ stream_id: streamId, position: broken.position, problem: `hash chain broken at version ${broken.stream_version}: ${broken.problem}` });
        continue;
      }
      for (const e of events) {
        if (!isKnownEventType(e.type)) {
          this.divergences.push({ stream_id: streamId, position: e.position, problem: `unknown event type ${e.type}` });
          continue;
        }
        const data = parseEventData(e.type, e.data);
        if (e.type === 'PolicyActivated') {
          const d = data as EventData<'PolicyActivated'>;
          policyEvents.set(`${e.tenant_id}/${d.policy_id}@${d.version}`, d);
          (policies[`${e.tenant_id}/${d.policy_id}`] ??= []).push({ policy_id: d.policy_id, tenant_id: e.tenant_id, version: d.version, hash: d.hash, signing_key_id: d.signing_key_id ?? null, position: e.position });
          this.checkPolicyVersion(e, d);
        }
      }
      if (streamId.startsWith('run-')) runs.push(events);
    }
    const receipts: SignedReceipt[] = [];
    const unsigned: string[] = [];
    let reEvaluated = 0;
    for (const events of runs) {
      const head = events[0]!;
      if (this.opts.since && new Date(head.recorded_at) < this.opts.since) continue;
      const issued = events.find((e) => e.type === 'ReceiptIssued');
      const receipt = buildReceipt(events);
      if (!receipt) {
        this.divergences.push({ stream_id: head.stream_id, position: head.position, problem: 'run has no evaluated decision' });
        continue;
      }
      if (!issued) {
        unsigned.push(head.stream_id);
      } else {
        const d = issued.data as EventData<'ReceiptIssued'>;
        if (d.receipt_digest !== sha256Digest(receipt)) {
          this.divergences.push({ stream_id: head.stream_id, position: issued.position, problem: 'rebuilt receipt differs from the one that was signed' });
        } else if (this.opts.keys) {
          const v = verifyDocument(receipt, d.signature, this.opts.keys);
          if (!v.ok) this.divergences.push({ stream_id: head.stream_id, position: issued.position, problem: `receipt signature: ${v.reason}: ${v.detail}` });
        }
        receipts.push({ receipt, signature: d.signature as SignedReceipt['signature'] });
      }
      if (this.reEvaluate(events, policyEvents)) reEvaluated += 1;
    }
    return {
      records: this.records,
      events: this.byId.size,
      duplicates: this.duplicates,
      streams: this.streams.size,
      runs: runs.length,
      receipts,
      unsigned_runs: unsigned,
      policies,
      re_evaluated: reEvaluated,
      divergences: this.divergences,
    };
  }

  private checkPolicyVersion(e: StoredEvent, d: EventData<'PolicyActivated'>): void {
    const compiled = compilePolicyVersion(d.document, d.version);
    if (!compiled.ok) {
      this.divergences.push({ stream_id: e.stream_id, position: e.position, problem: `activated policy does not compile: ${compiled.errors[0]?.message}` });
      return;
    }
    if (compiled.hash !== d.hash || sha256Digest(d.snapshot) !== d.hash) {
      this.divergences.push({ stream_id: e.stream_id, position: e.position, problem: `policy ${d.policy_id} v${d.version}: recorded snapshot or hash does not match its document` });
      return;
    }
    if (d.signature && this.opts.keys && d.signing_key_id) {
      const v = verifyDocument(activationSigned(d), { alg: 'Ed25519', key_id: d.signing_key_id, value: d.signature }, this.opts.keys);
      if (!v.ok) this.divergences.push({ stream_id: e.stream_id, position: e.position, problem: `policy signature: ${v.reason}: ${v.detail}` });
    }
  }

  /** Re-derives the decision from the recorded policy versions, request, facts and clock. */
  private reEvaluate(events: StoredEvent[], policyEvents: Map<string, EventData<'PolicyActivated'>>): boolean {
    const view = foldRun(events.filter((e) => isKnownEventType(e.type)).map((e) => ({ type: e.type, data: e.data }) as RunEvent));
    const requested = events.find((e) => e.type === 'DecisionRequested');
    const evaluated = events.find((e) => e.type === 'PolicyEvaluated');
    if (!view || !requested || !evaluated) return false;
    const req = requested.data as EventData<'DecisionRequested'>;
    const ev = evaluated.data as EventData<'PolicyEvaluated'>;
    const sources = [];
    for (const p of ev.policies) {
      const d = policyEvents.get(`${view.tenant_id}/${p.policy_id}@${p.version}`) ?? policyEvents.get(`platform/${p.policy_id}@${p.version}`);
      if (!d) {
        this.divergences.push({ stream_id: evaluated.stream_id, position: evaluated.position, problem: `policy ${p.policy_id} v${p.version} is not in the log` });
        return false;
      }
      if (d.hash !== p.hash) {
        this.divergences.push({ stream_id: evaluated.stream_id, position: evaluated.position, problem: `policy ${p.policy_id} v${p.version} hash differs from the activated one` });
        return false;
      }
      sources.push({ document: d.document, version: d.version });
    }
    const compiled = compile(sources, { defaultDecision: ev.default_decision ?? 'DENY' });
    if (!compiled.ok) {
      this.divergences.push({ stream_id: evaluated.stream_id, position: evaluated.position, problem: 'recorded policies no longer compile' });
      return false;
    }
    const recorded = ev.evaluation;
    if (compiled.snapshot.hash !== recorded.snapshot_hash) {
      this.divergences.push({ stream_id: evaluated.stream_id, position: evaluated.position, problem: `snapshot hash ${compiled.snapshot.hash} differs from the recorded ${recorded.snapshot_hash}` });
      return false;
    }
    const again = evaluate(compiled.snapshot, req.request, recorded.facts, new Date(recorded.now));
    if (again.decision !== recorded.decision || again.matched_rule !== recorded.matched_rule) {
      this.divergences.push({ stream_id: evaluated.stream_id, position: evaluated.position, problem: `re-evaluation gives ${again.decision} (${again.matched_rule}), recorded ${recorded.decision} (${recorded.matched_rule})` });
      return false;
    }
    return true;
  }
}
