import { afterVerdicts } from '../decisions/judgment-verdicts.ts';
import type { z } from 'zod';
import { CURRENT_SCHEMA_VERSION, EVENT_DATA, isKnownEventType, StoredEvent, type EventData, type EventType } from '../../schemas/events.ts';
import type { PublicKeySet, Receipt, SignedReceipt } from '../../schemas/receipt.ts';
import { foldRun, type RunEvent } from '../decisions/run-view.ts';
import { eventHashMatches, verifyChain } from '../events/hash-chain.ts';
import { catalogStreamId, currentStreamId, legacyStreamId, parseStreamId, PLATFORM_SCOPE, tenantOfStream } from '../events/stream-ids.ts';
import { upcast, UPCASTERS, type UpcasterRegistry } from '../events/upcast.ts';
import { applyCatalogChange, catalogOf, assembleEffective, catalogRiskTags, EMPTY_CATALOG, evaluate, type CatalogState, type CompiledPolicy, type Snapshot } from '../policy/index.ts';
import { ToolCatalogFact } from '../../schemas/tool-catalog.ts';
import type { DecisionRequest, Evaluation } from '../../schemas/decision.ts';
import { checkEditNoLooser, editedRequest, sameJson } from '../decisions/approval-edit.ts';
import { buildReceipt } from '../receipts/build-receipt.ts';
import { canonicalJson, sha256Digest, sha256OfCanonical } from '../receipts/canonical.ts';
import { ed25519Verify, prepareDocumentSignature, verifyDocument, type KeyResolution } from '../receipts/verify.ts';
import { activationSigned, compilePolicyVersion, frozenPolicy, isVersionHash } from '../lifecycle/policy-version.ts';
import { withApprovalTimeout } from '../decisions/approval-timeout.ts';
import { checkPolicyChain, type PolicyChain } from '../lifecycle/policy-chain.ts';
import { prepareRunStart, startSignatureProblem } from '../decisions/start-attestation.ts';
import { checkRunAgent, checkRunApprovals, foldTenantStream, type AccessTimeline, type TenantMembership } from './tenant-membership.ts';

/**
 * One shard of the auditor's replay (services/audit/replay.ts): the records of the streams routed to it, each
 * parsed, validated and hashed on arrival, then every stream checked and every run rebuilt, re-derived and its
 * signatures verified. Everything a shard reports is keyed by where it sits in the log (a record's arrival
 * index; a stream's first accepted record), so the reports of any number of shards merge into the one a single
 * shard gives for the whole log. A shard runs on a worker thread (replay-worker.ts) or, for a small log or
 * without threads, on the caller's.
 */

/** `position` is the event's global position (or, for a record that is not an event, where it sat). */
export type Divergence = { stream_id: string | null; position: string | null; problem: string };
export type PolicyVersion = { policy_id: string; tenant_id: string; version: number; hash: string; signing_key_id: string | null; position: string };
export type EditedRun = { decision_id: string; args_digest: string | null; edited_args_digest: string; approved_by: string[] };

/** What a shard needs besides its records: the replay's options that are plain data (threads get a copy). */
export type ShardOptions = {
  keys: PublicKeySet | null;
  tenantId?: string | undefined;
  /** Only runs that started at or after this time (ms) are rebuilt. */
  sinceMs?: number | undefined;
  receiptGraceMs: number;
  /** Custom upcasters (tests) keep the replay on the caller's thread: functions do not cross to a worker. */
  upcasters?: UpcasterRegistry;
  schemaVersion?: number;
  /** This shard's number and how many there are: a record whose stream is another shard's is handed back. */
  shard: number;
  shards: number;
};

/** A record that is not (or not accepted as) an event, reported at its arrival index. */
export type RecordProblem = { index: number; divergence: Divergence };
/** One copy of an event id that several shards hold (cross-shard duplicates are settled by the caller). */
export type EventCopy = { index: number; event_id: string; hash: string; position: string; stream_id: string };
/** The event ids several shards hold: the one record index accepted for each (the others are dropped). */
export type Contested = Map<string, number>;
/** A record another shard owns, to be handed to it with its arrival index. */
export type Misrouted = { index: number; value: string; where: string; shard: number };

/** What folding one stream gave, at the stream's place in the log (`order`: its first accepted record). */
export type StreamOut = {
  order: number;
  divergences: Divergence[];
  policies: Array<[string, PolicyVersion]>;
  activations: Array<[string, EventData<'PolicyActivated'>]>;
  chain?: [string, PolicyChain];
  membership?: [string, TenantMembership];
  catalog?: [string, CatalogState[]];
  timeline?: [string, AccessTimeline];
};
/** The facts of every shard's streams that runs of any shard depend on, merged in log order (last one wins). */
export type SharedFacts = {
  activations: Array<[string, EventData<'PolicyActivated'>]>;
  catalogs: Array<[string, CatalogState[]]>;
  timelines: Array<[string, AccessTimeline]>;
};
export type FoldOut = { problems: RecordProblem[]; events: number; duplicates: number; streams: number; runs: number; folded: StreamOut[] };
/** What checking one run gave, at the run's place in the log. */
export type RunOut = { order: number; divergences: Divergence[]; receipts: SignedReceipt[]; unsigned: string | null; reEvaluated: boolean; edited: EditedRun[] };

type Batch = { index: number; size: number };
type Entry = { index: number; e: StoredEvent; hashOk: boolean | undefined };

/** The append batch an event was written in (append-to-stream stamps it), when recorded. */
function batchOf(e: StoredEvent): Batch | null {
  const b = e.metadata['batch'];
  if (typeof b !== 'object' || b === null) return null;
  const { index, size } = b as Record<string, unknown>;
  return typeof index === 'number' && typeof size === 'number' ? { index, size } : null;
}

const STORED_EVENT_KEYS = Object.keys(StoredEvent.shape);
const SHA256 = /^sha256:[0-9a-f]{64}$/;
const DECIMAL = /^\d+$/;
const recordedAtSchema = StoredEvent.shape.recorded_at;
const isPlainRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype && !Object.hasOwn(v, '__proto__');
const boundedString = (v: unknown, min: number, max: number): v is string => typeof v === 'string' && v.length >= min && v.length <= max;
const positiveInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;

/**
 * The StoredEvent schema's answer for a record that plainly meets it, without zod's generic walk (the
 * auditor validates every record of the log): exactly the schema's twelve keys, each value of its type
 * within the schema's bounds, the timestamp checked by the schema's own field. The result equals what
 * StoredEvent.parse gives (keys in the schema's order; data and metadata the parsed objects themselves, whose own keys and values zod's
 * records would copy).
 * Anything less plain (a missing or extra key, an own "__proto__", a number not a safe integer) answers null,
 * and the caller asks zod, whose answer (and error) is the reference.
 */
export function plainStoredEvent(json: unknown): StoredEvent | null {
  if (!isPlainRecord(json)) return null;
  const keys = Object.keys(json);
  if (keys.length !== STORED_EVENT_KEYS.length) return null;
  const j = json;
  for (const k of STORED_EVENT_KEYS) if (!Object.hasOwn(j, k)) return null;
  const { position, stream_id, stream_version, event_id, type, schema_version, tenant_id, data, metadata, recorded_at, prev_hash, hash } = j;
  if (typeof position !== 'string' || !DECIMAL.test(position)) return null;
  if (!boundedString(stream_id, 1, 300) || !positiveInt(stream_version) || !boundedString(event_id, 1, 300)) return null;
  if (typeof type !== 'string' || !positiveInt(schema_version) || typeof tenant_id !== 'string') return null;
  if (!isPlainRecord(data) || !isPlainRecord(metadata)) return null;
  if (typeof hash !== 'string' || !SHA256.test(hash) || (prev_hash !== null && (typeof prev_hash !== 'string' || !SHA256.test(prev_hash)))) return null;
  if (typeof recorded_at !== 'string' || !recordedAtSchema.safeParse(recorded_at).success) return null;
  return { position, stream_id, stream_version, event_id, type, schema_version, tenant_id, data, metadata, recorded_at, prev_hash, hash };
}

/**
 * Whether zod's output for an event's data is the stored data itself, value for value: the same own keys in the
 * same order, the same primitives (Object.is), arrays of the same length, only plain objects and arrays.
 * Anything zod changed (a default filled in, a key dropped or reordered, a transform) answers false.
 */
function sameTree(stored: unknown, parsed: unknown): boolean {
  if (Object.is(stored, parsed)) return true;
  if (typeof stored !== 'object' || typeof parsed !== 'object' || stored === null || parsed === null) return false;
  if (Array.isArray(stored)) {
    if (!Array.isArray(parsed) || parsed.length !== stored.length) return false;
    for (let i = 0; i < stored.length; i++) if (!sameTree(stored[i], parsed[i])) return false;
    return true;
  }
  if (Array.isArray(parsed) || Object.getPrototypeOf(stored) !== Object.prototype || Object.getPrototypeOf(parsed) !== Object.prototype) return false;
  const a = Object.keys(stored);
  const b = Object.keys(parsed);
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const k = a[i]!;
    if (k !== b[i] || !sameTree((stored as Record<string, unknown>)[k], (parsed as Record<string, unknown>)[k])) return false;
  }
  return true;
}

/**
 * An event's data validated against its type's schema: zod's answer, except that when zod's output is the
 * stored data value for value (sameTree), the stored objects themselves. The replay keeps every event of the
 * log until its runs are checked; keeping zod's copy as well held each event's data twice, and the copying
 * collector moved both. What the checks read is the same either way.
 */
export function validatedData(type: EventType, data: Record<string, unknown>): { success: true; data: Record<string, unknown> } | { success: false; error: z.ZodError } {
  const parsed = EVENT_DATA[type].safeParse(data);
  if (!parsed.success) return parsed;
  return { success: true, data: sameTree(data, parsed.data) ? data : parsed.data };
}

/**
 * The shard a stream belongs to, from its id as a record carries it: FNV-1a over the id with every `-` read as
 * `/`, so a stream's pre-migration id (`run-dec_x`, `policy-acme-refunds`) and its current one
 * (currentStreamId) always land on one shard. Ids that differ only there may share a shard; that is harmless.
 */
export function shardOfStream(rawStreamId: string, shards: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < rawStreamId.length; i++) {
    const c = rawStreamId.charCodeAt(i);
    h = Math.imul(h ^ (c === 45 ? 47 : c), 0x01000193);
  }
  return (h >>> 0) % shards;
}

/** A 52-bit fingerprint of an event id (two 32-bit FNV variants), to find ids several shards hold. */
export function eventIdFingerprint(id: string): number {
  let a = 0x811c9dc5;
  let b = 0x050c5d1f;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193) ^ (b >>> 13);
  }
  return (a >>> 0) * 0x100000 + ((b >>> 0) & 0xfffff);
}

/*
 * The per-run checks below run once per run of the log: they scan a run's events with plain loops and report
 * through methods, not through closures made on every call (a closure per call is an allocation, and under
 * tsx, whose esbuild keeps function names, an Object.defineProperty as well: about 1 µs per event in all).
 */

/** An evaluation's approval settings, or null for the many (every ALLOW) that carry none. */
const approvalSettings = (e: Evaluation): unknown => (e.approval === undefined && e.requirements === undefined ? null : [e.approval ?? null, e.requirements ?? null]);

const asRunEvent = (e: StoredEvent): RunEvent => ({ type: e.type, data: e.data }) as RunEvent;

/** The first of a run's events of this type. */
function firstOfType(events: readonly StoredEvent[], type: string): StoredEvent | undefined {
  for (const e of events) if (e.type === type) return e;
  return undefined;
}

/** A run's events of this type, in order. */
function allOfType(events: readonly StoredEvent[], type: string): StoredEvent[] {
  const out: StoredEvent[] = [];
  for (const e of events) if (e.type === type) out.push(e);
  return out;
}

/** A run's events up to (`upTo`) or after (`!upTo`) a stream version, in order. */
function byVersion(events: readonly StoredEvent[], version: number, upTo: boolean): StoredEvent[] {
  const out: StoredEvent[] = [];
  for (const e of events) if ((e.stream_version <= version) === upTo) out.push(e);
  return out;
}

export class ReplayShard {
  /** Every parsed event of this shard's streams, in arrival order (records handed over late are sorted in). */
  private readonly entries: Entry[] = [];
  private sorted = true;
  /** Event ids seen on arrival: only a first copy is hashed then (a later copy is a duplicate or reported). */
  private readonly arrived = new Set<string>();
  private readonly problems: RecordProblem[] = [];
  private readonly misrouted: Misrouted[] = [];
  private readonly byId = new Map<string, StoredEvent>();
  private readonly streams = new Map<string, StoredEvent[]>();
  /** Each stream's first accepted record: where it sits in the log, the key every merge sorts by. */
  private readonly streamOrder = new Map<string, number>();
  private duplicates = 0;
  private runs: StoredEvent[][] = [];
  /** Where the check under way reports (one stream's or one run's list, then handed out with its order). */
  private divergences: Divergence[] = [];
  private editedRuns: EditedRun[] = [];
  private readonly compiled = new Map<string, Snapshot | null>();
  /** Each tenant's tool catalog at every version its stream verifies to (index = version; 0 = empty). */
  private catalogs = new Map<string, CatalogState[]>();
  private timelines = new Map<string, AccessTimeline>();
  private policyEvents = new Map<string, EventData<'PolicyActivated'>>();
  /** Events whose recorded hash is not their content's (the first copy of each event id). */
  private readonly badHashes = new WeakSet<StoredEvent>();
  /** Key lookups, by key id (the key set does not change during a replay). */
  private readonly keyCache = new Map<string, KeyResolution>();
  /** Events whose data as stored (not upcast) passed its type's schema in checkStream. */
  private readonly validatedAsStored = new WeakSet<StoredEvent>();

  constructor(private readonly opts: ShardOptions) {}

  /** One record, at its arrival index: parsed, validated, renamed to its current stream id, hashed if first. */
  add(index: number, value: string | null, where: string, late = false): void {
    let json: unknown;
    try {
      json = JSON.parse(value ?? '');
    } catch {
      this.problems.push({ index, divergence: { stream_id: null, position: where, problem: 'record is not JSON' } });
      return;
    }
    let e = plainStoredEvent(json);
    if (e === null) {
      const parsed = StoredEvent.safeParse(json);
      if (!parsed.success) {
        const i = parsed.error.issues[0]!;
        this.problems.push({ index, divergence: { stream_id: null, position: where, problem: `record is not an event: ${i.path.join('.')}: ${i.message}` } });
        return;
      }
      e = parsed.data;
    }
    if (this.opts.shards > 1) {
      const owner = shardOfStream(e.stream_id, this.opts.shards);
      if (owner !== this.opts.shard) {
        this.misrouted.push({ index, value: value!, where, shard: owner });
        return;
      }
    }
    // A copy published before migration 0014 holds `-` stream ids: read them as the current ids (the hash
    // check still covers the id as appended: eventHashMatches).
    // The validated event is a fresh object of our own: renamed in place, not copied (one allocation less per event).
    e.stream_id = currentStreamId(e.stream_id, e.tenant_id);
    // One tenant's replay keeps the platform's policy streams: they decided its runs too.
    if (this.opts.tenantId && e.tenant_id !== this.opts.tenantId && e.tenant_id !== PLATFORM_SCOPE) return;
    let hashOk: boolean | undefined;
    if (!this.arrived.has(e.event_id)) {
      this.arrived.add(e.event_id);
      hashOk = eventHashMatches(e);
    }
    if (late) this.sorted = false;
    this.entries.push({ index, e, hashOk });
  }

  /** Records that belong to other shards' streams (found once parsed), for the caller to hand over. */
  takeMisrouted(): Misrouted[] {
    return this.misrouted.splice(0);
  }

  /** The sorted fingerprints of the event ids this shard holds. */
  fingerprints(): Float64Array {
    const out = new Float64Array(this.arrived.size);
    let i = 0;
    for (const id of this.arrived) out[i++] = eventIdFingerprint(id);
    return out.sort();
  }

  /** Every copy this shard holds of the event ids with these fingerprints. */
  copies(fingerprints: readonly number[]): EventCopy[] {
    const wanted = new Set(fingerprints);
    return this.entries.filter((x) => wanted.has(eventIdFingerprint(x.e.event_id)))
      .map(({ index, e }) => ({ index, event_id: e.event_id, hash: e.hash, position: e.position, stream_id: e.stream_id }));
  }

  /**
   * Deduplicates by event id in arrival order (ids in `contested` keep only the record the caller chose, and
   * the caller reports their other copies), then checks every stream: its chain, its events' data, and what it
   * folds to. Streams are visited in log order.
   */
  fold(contested: Contested, progress: () => void = () => {}): FoldOut {
    if (!this.sorted) this.entries.sort((a, b) => a.index - b.index);
    for (const x of this.entries) {
      const e = x.e;
      const keep = contested.get(e.event_id);
      if (keep !== undefined) {
        if (keep !== x.index) continue;
      } else {
        const seen = this.byId.get(e.event_id);
        if (seen) {
          // Transport duplicates are allowed; two different events with one id are not.
          if (seen.hash !== e.hash || seen.position !== e.position) {
            this.problems.push({ index: x.index, divergence: { stream_id: e.stream_id, position: e.position, problem: `event id ${e.event_id} appears twice with different content` } });
          } else this.duplicates += 1;
          continue;
        }
      }
      this.byId.set(e.event_id, e);
      if (!(x.hashOk ?? eventHashMatches(e))) this.badHashes.add(e);
      const list = this.streams.get(e.stream_id);
      if (list) list.push(e);
      else {
        this.streams.set(e.stream_id, [e]);
        this.streamOrder.set(e.stream_id, x.index);
      }
    }
    this.entries.length = 0;
    this.arrived.clear();
    const folded: StreamOut[] = [];
    for (const [streamId, raw] of this.streams) {
      const out = this.foldStream(streamId, raw);
      progress();
      if (out.divergences.length || out.policies.length || out.activations.length || out.chain || out.membership || out.catalog || out.timeline) folded.push(out);
    }
    this.problems.sort((a, b) => a.index - b.index);
    return { problems: this.problems, events: this.byId.size, duplicates: this.duplicates, streams: this.streams.size, runs: this.runs.length, folded };
  }

  private foldStream(streamId: string, raw: StoredEvent[]): StreamOut {
    const out: StreamOut = { order: this.streamOrder.get(streamId)!, divergences: [], policies: [], activations: [] };
    this.divergences = out.divergences;
    raw.sort((a, b) => a.stream_version - b.stream_version);
    const events = this.checkStream(streamId, raw);
    if (!events) return out;
    const parsed = parseStreamId(streamId);
    // A stream that names a tenant holds only that tenant's events (each event's tenant is hashed).
    const owner = parsed ? tenantOfStream(parsed) : null;
    const stranger = owner === null ? undefined : events.find((e) => e.tenant_id !== owner);
    if (stranger) {
      this.divergences.push({ stream_id: streamId, position: stranger.position, problem: `stream ${streamId} holds an event of tenant ${stranger.tenant_id}` });
      return out;
    }
    let lastPolicyVersion = 0;
    for (const e of events) {
      if (e.type !== 'PolicyActivated') continue;
      const d = e.data as EventData<'PolicyActivated'>;
      if (d.version !== lastPolicyVersion + 1) {
        this.divergences.push({ stream_id: streamId, position: e.position, problem: `policy ${d.policy_id} activates version ${d.version} after version ${lastPolicyVersion}` });
      }
      lastPolicyVersion = d.version;
      out.activations.push([`${e.tenant_id}/${d.policy_id}@${d.version}`, d]);
      out.policies.push([`${e.tenant_id}/${d.policy_id}`, { policy_id: d.policy_id, tenant_id: e.tenant_id, version: d.version, hash: d.hash, signing_key_id: d.signing_key_id ?? null, position: e.position }]);
      this.checkPolicyVersion(e, d);
      // Platform-level versions live only in platform streams, and only those: a copy of a platform activation
      // in a tenant's stream (or a tenant's in the platform's) is never one that could decide.
      const platformStream = e.tenant_id === PLATFORM_SCOPE;
      if (platformStream !== (d.scope['level'] === 'platform')) {
        this.divergences.push({ stream_id: streamId, position: e.position, problem: platformStream
          ? `platform policy ${d.policy_id} v${d.version} is not platform-level (scope ${String(d.scope['level'])})`
          : `policy ${d.policy_id} v${d.version} of tenant ${e.tenant_id} says scope platform: platform policies are written only to platform/policy/<id>` });
      }
    }
    if (parsed?.kind === 'catalog') {
      this.foldCatalog(streamId, events);
      out.catalog = [events[0]!.tenant_id, this.catalogs.get(events[0]!.tenant_id)!];
    }
    if (parsed?.kind === 'run') this.runs.push(events);
    if (parsed?.kind === 'tenant' && events.length > 0) {
      const tenantId = parsed.tenantId;
      const folded = foldTenantStream(tenantId, events);
      for (const p of folded.problems) this.divergences.push({ stream_id: streamId, position: p.position, problem: p.problem });
      if (events.some((e) => e.tenant_id !== tenantId)) this.divergences.push({ stream_id: streamId, position: events[0]!.position, problem: `the stream of tenant ${tenantId} holds another tenant's events` });
      out.membership = [tenantId, folded.membership];
      out.timeline = [tenantId, folded.timeline];
    }
    if (parsed?.kind === 'policy' && events.length > 0) {
      const head = events[0]!;
      const policyId = parsed.policyId;
      const folded = checkPolicyChain(policyId, events);
      for (const p of folded.problems) this.divergences.push({ stream_id: streamId, position: p.position, problem: p.problem });
      if (folded.chain) out.chain = [`${head.tenant_id}/${policyId}`, folded.chain];
    }
    return out;
  }

  /**
   * Every run of this shard: its receipts rebuilt and verified, its coverage, its start's signature, who asked
   * and who answered (against the tenants' streams), and its decision re-derived from the policies in force
   * (`facts`: every shard's, merged in log order).
   */
  checkRuns(facts: SharedFacts, nowMs: number, progress: () => void = () => {}): RunOut[] {
    this.policyEvents = new Map(facts.activations);
    this.catalogs = new Map(facts.catalogs);
    this.timelines = new Map(facts.timelines);
    const grace = this.opts.receiptGraceMs;
    const since = this.opts.sinceMs;
    const out: RunOut[] = [];
    for (const events of this.runs) {
      if (since !== undefined && !(new Date(events[0]!.recorded_at).getTime() >= since)) continue;
      const run: RunOut = { order: this.streamOrder.get(events[0]!.stream_id)!, divergences: [], receipts: [], unsigned: null, reEvaluated: false, edited: [] };
      this.divergences = run.divergences;
      this.editedRuns = run.edited;
      const issued = allOfType(events, 'ReceiptIssued');
      for (const r of issued) {
        const signed = this.checkReceipt(events, r);
        if (signed) run.receipts.push(signed);
      }
      if (run.divergences.length === 0) {
        const unsigned: string[] = [];
        this.checkCoverage(events, issued[issued.length - 1], nowMs, grace, unsigned);
        run.unsigned = unsigned[0] ?? null;
      }
      this.checkStart(events);
      // The agent the run asked as, against who its principal was then (the tenant's stream).
      const agentProblem = checkRunAgent(this.timelines.get(events[0]!.tenant_id), events[0]!);
      if (agentProblem) this.divergences.push({ stream_id: events[0]!.stream_id, position: events[0]!.position, problem: agentProblem });
      // And each answer, against who its approver was then: an enabled approver of one of the round's groups.
      for (const p of checkRunApprovals(this.timelines.get(events[0]!.tenant_id), events)) this.divergences.push({ stream_id: events[0]!.stream_id, position: p.position, problem: p.problem });
      run.reEvaluated = this.reEvaluate(events, this.policyEvents);
      out.push(run);
      progress();
    }
    this.keyCache.clear();
    return out;
  }

  /**
   * Chain first (on the stored form: hashes cover it), then upcast and validate every event's data. Returns
   * the stream's events in the current shape, or null after reporting its first bad position.
   */
  private checkStream(streamId: string, raw: StoredEvent[]): StoredEvent[] | null {
    const broken = verifyChain(raw, (e) => !this.badHashes.has(e));
    if (broken) {
      this.divergences.push({ stream_id: streamId, position: broken.position, problem: `hash chain broken at version ${broken.stream_version}: ${broken.problem}` });
      return null;
    }
    const out: StoredEvent[] = [];
    for (const e of raw) {
      if (!isKnownEventType(e.type)) {
        this.divergences.push({ stream_id: streamId, position: e.position, problem: `unknown event type ${e.type}` });
        return null;
      }
      let current: StoredEvent;
      try {
        current = upcast(e, this.opts.upcasters ?? UPCASTERS, this.opts.schemaVersion ?? CURRENT_SCHEMA_VERSION);
      } catch (err) {
        this.divergences.push({ stream_id: streamId, position: e.position, problem: err instanceof Error ? err.message : String(err) });
        return null;
      }
      const data = validatedData(e.type, current.data);
      if (!data.success) {
        const i = data.error.issues[0]!;
        this.divergences.push({ stream_id: streamId, position: e.position, problem: `${e.type} data invalid at ${i.path.join('.') || '(root)'}: ${i.message}` });
        return null;
      }
      if (current === e) this.validatedAsStored.add(e);
      // The stored event itself when its data needed no change (nothing in the replay writes to an event).
      out.push(data.data === current.data ? current : { ...current, data: data.data });
    }
    // Appends are atomic: a stream that ends inside one lost its tail after it was written.
    const last = raw[raw.length - 1]!;
    const batch = batchOf(last);
    if (batch && batch.index !== batch.size) {
      this.divergences.push({ stream_id: streamId, position: last.position, problem: `stream ends inside an atomic append (event ${batch.index} of ${batch.size}): its tail was removed after version ${last.stream_version}` });
      return null;
    }
    return out;
  }

  /**
   * One ReceiptIssued: rebuilt exactly as the worker built it (issue-receipt.ts), its digest compared, then its
   * key looked up and its signature checked: the receipt's first problem, or the signed receipt.
   */
  private checkReceipt(events: StoredEvent[], issued: StoredEvent): SignedReceipt | null {
    const problem = this.receiptProblem;
    const d = issued.data as EventData<'ReceiptIssued'>;
    if (d.head_version !== issued.stream_version - 1) return problem(issued, `receipt covers version ${d.head_version} but was recorded at version ${issued.stream_version}`);
    const receipt: Receipt | null = buildReceipt(byVersion(events, d.head_version, true));
    if (!receipt) return problem(issued, 'receipt issued for a run with no evaluated decision');
    const check = this.opts.keys ? prepareDocumentSignature(d.signature, this.opts.keys, this.keyCache) : null;
    let signed: SignedReceipt = { receipt, signature: d.signature };
    let canonical = canonicalJson(receipt);
    if (sha256OfCanonical(canonical) !== d.receipt_digest) {
      // Signed before migration 0014: the receipt names its stream as it was then (legacyStreamId).
      const legacy = legacyStreamId(receipt.stream_id);
      if (legacy === null) return problem(issued, 'rebuilt receipt differs from the one that was signed');
      signed = { ...signed, receipt: { ...receipt, stream_id: legacy } };
      canonical = canonicalJson(signed.receipt);
      if (sha256OfCanonical(canonical) !== d.receipt_digest) return problem(issued, 'rebuilt receipt differs from the one that was signed');
    }
    if (!check) return signed;
    if (!check.ok) return problem(issued, check.result.ok ? 'receipt signature: unchecked' : `receipt signature: ${check.result.reason}: ${check.result.detail}`);
    const v = ed25519Verify(check.x, Buffer.from(canonical, 'utf8'), check.sig) ? check.success : check.failure;
    return v.ok ? signed : problem(issued, `receipt signature: ${v.reason}: ${v.detail}`);
  }

  /** A problem at an event of the run under way; answers null (checkReceipt) or false (checkEdits). */
  private readonly receiptProblem = (at: StoredEvent, text: string): null => {
    this.divergences.push({ stream_id: at.stream_id, position: at.position, problem: text });
    return null;
  };
  private readonly editProblem = (at: StoredEvent, text: string): false => {
    this.divergences.push({ stream_id: at.stream_id, position: at.position, problem: text });
    return false;
  };

  /**
   * A final run's events must all be covered by a signed receipt once the grace has passed. Catches a tail
   * truncated at an append boundary (ReceiptIssued removed) and events forged after the receipt.
   */
  private checkCoverage(events: StoredEvent[], lastReceipt: StoredEvent | undefined, now: number, grace: number, unsigned: string[]): void {
    const covered = lastReceipt ? lastReceipt.stream_version : 0;
    const uncovered = byVersion(events, covered, false);
    if (uncovered.length === 0) return;
    const final = firstOfType(events, 'DecisionFinalized') !== undefined;
    // Math.max over all of them (NaN for a time that does not parse, as the spread form gave).
    let newest = -Infinity;
    for (const e of uncovered) newest = Math.max(newest, new Date(e.recorded_at).getTime());
    if (final && now - newest > grace) {
      const first = uncovered[0]!;
      this.divergences.push({
        stream_id: first.stream_id,
        position: first.position,
        problem: lastReceipt
          ? `${uncovered.length} event(s) after the receipt at version ${covered} are covered by no signature`
          : 'run is final but has no receipt: its tail was removed, or its receipt never issued',
      });
      return;
    }
    if (!lastReceipt) unsigned.push(events[0]!.stream_id);
  }

  private checkPolicyVersion(e: StoredEvent, d: EventData<'PolicyActivated'>): void {
    // The frozen compiled policy is the version: it must hash to what was activated and signed. The document is
    // not compiled again, since a later compiler may read it differently without changing what was in force.
    const f = frozenPolicy(d);
    if (!f.ok) {
      this.divergences.push({ stream_id: e.stream_id, position: e.position, problem: `${f.problem}: recorded snapshot or hash does not match` });
      return;
    }
    if (d.document_hash !== undefined) {
      if (sha256Digest(d.document) !== d.document_hash) {
        this.divergences.push({ stream_id: e.stream_id, position: e.position, problem: `policy ${d.policy_id} v${d.version}: recorded document does not match its document_hash` });
        return;
      }
    } else {
      // An activation from before document hashes were signed: its document is tied to its snapshot only by
      // compiling it again, which holds as long as the compiler reads it as it did then.
      const compiled = compilePolicyVersion(d.document, d.version);
      if (!compiled.ok || !isVersionHash(compiled, d.hash)) {
        this.divergences.push({ stream_id: e.stream_id, position: e.position, problem: `policy ${d.policy_id} v${d.version}: recorded snapshot or hash does not match its document` });
        return;
      }
    }
    if (!this.opts.keys) return;
    if (!d.signature || !d.signing_key_id) {
      this.divergences.push({ stream_id: e.stream_id, position: e.position, problem: `policy ${d.policy_id} v${d.version} is not signed` });
      return;
    }
    const v = verifyDocument(activationSigned(d), { alg: 'Ed25519', key_id: d.signing_key_id, value: d.signature }, this.opts.keys);
    if (!v.ok) this.divergences.push({ stream_id: e.stream_id, position: e.position, problem: `policy signature: ${v.reason}: ${v.detail}` });
  }

  /** The effective set a run was evaluated with, assembled once per distinct set (replay of 100k events). */
  private snapshotFor(tenantId: string, ev: EventData<'PolicyEvaluated'>, policyEvents: Map<string, EventData<'PolicyActivated'>>, at: StoredEvent): Snapshot | null {
    const key = `${tenantId}\u0000${ev.default_decision ?? 'DENY'}\u0000${ev.policies.map((p) => `${p.scope ?? ''}/${p.policy_id}@${p.version}:${p.hash}`).join(',')}`;
    const hit = this.compiled.get(key);
    if (hit !== undefined) return hit;
    const frozen: CompiledPolicy[] = [];
    let problem: string | null = null;
    for (const p of ev.policies) {
      // The run's reference names the owner: the platform's policy (scope platform) or the tenant's own.
      const d = policyEvents.get(`${p.scope === 'platform' ? PLATFORM_SCOPE : tenantId}/${p.policy_id}@${p.version}`);
      if (!d) { problem = `policy ${p.policy_id} v${p.version} is not in the log`; break; }
      if (d.hash !== p.hash) { problem = `policy ${p.policy_id} v${p.version} hash differs from the activated one`; break; }
      // What was frozen at activation re-derives the decision: today's compiler never re-reads the document.
      const f = frozenPolicy(d);
      if (!f.ok) { problem = f.problem; break; }
      frozen.push(f.policy);
    }
    const snapshot: Snapshot | null = problem ? null : assembleEffective(frozen, { defaultDecision: ev.default_decision ?? 'DENY' });
    if (problem) {
      // Not cached: each run that depends on a missing or altered policy is reported at its own position.
      this.divergences.push({ stream_id: at.stream_id, position: at.position, problem });
      return null;
    }
    this.compiled.set(key, snapshot);
    return snapshot;
  }

  /**
   * A tenant's tool catalog stream, folded with the engine's own applyCatalogChange: each event must sit at
   * the version it names and record the hash of the catalog it makes. Folding stops at the first bad event,
   * so a decision that cites a later version is reported too.
   */
  private foldCatalog(streamId: string, events: StoredEvent[]): void {
    const tenant = events[0]!.tenant_id;
    const states: CatalogState[] = [EMPTY_CATALOG];
    this.catalogs.set(tenant, states);
    let state = EMPTY_CATALOG;
    for (const e of events) {
      const problem = (p: string): void => void this.divergences.push({ stream_id: streamId, position: e.position, problem: p });
      if (streamId !== catalogStreamId(e.tenant_id)) return problem(`catalog stream ${streamId} holds an event of tenant ${e.tenant_id}`);
      if (e.type === 'ToolCatalogRegistered') {
        const { catalog_version: _v, catalog_hash: _h, registered_by: _by, ...source } = e.data as EventData<'ToolCatalogRegistered'>;
        state = applyCatalogChange(state, { kind: 'registered', source });
      } else if (e.type === 'ToolCatalogRemoved') {
        const d = e.data as EventData<'ToolCatalogRemoved'>;
        if (!state.sources.some((x) => x.source_id === d.source_id)) return problem(`catalog removes source ${d.source_id}, which is not registered`);
        state = applyCatalogChange(state, { kind: 'removed', source_id: d.source_id });
      } else {
        return problem(`unexpected ${e.type} in a tool catalog stream`);
      }
      const d = e.data as { catalog_version: number; catalog_hash: string };
      if (d.catalog_version !== e.stream_version || state.version !== e.stream_version) return problem(`catalog event names version ${d.catalog_version} at stream version ${e.stream_version}`);
      if (d.catalog_hash !== state.hash) return problem(`catalog version ${state.version}: recorded hash ${d.catalog_hash} differs from the catalog rebuilt from its events (${state.hash})`);
      states.push(state);
    }
  }

  /** A decision's facts.tool_catalog must be what that catalog version, rebuilt from the log, gives its request. */
  private checkCatalogFact(tenantId: string, request: DecisionRequest, raw: unknown, at: StoredEvent): boolean {
    const problem = (p: string) => {
      this.divergences.push({ stream_id: at.stream_id, position: at.position, problem: p });
      return false;
    };
    const fact = ToolCatalogFact.safeParse(raw);
    if (!fact.success) return problem(`facts.tool_catalog is malformed: ${fact.error.issues[0]?.path.join('.')}: ${fact.error.issues[0]?.message}`);
    const state = this.catalogs.get(tenantId)?.[fact.data.version];
    if (!state) return problem(`tool catalog version ${fact.data.version} of tenant ${tenantId} is not in the log (or not verifiable)`);
    if (state.hash !== fact.data.hash) return problem(`tool catalog version ${fact.data.version}: recorded hash ${fact.data.hash} differs from the log's ${state.hash}`);
    const derived = catalogRiskTags(catalogOf(state.sources), request);
    if (derived.join(',') !== fact.data.risk_tags.join(',')) return problem(`tool catalog version ${fact.data.version} gives [${derived.join(', ')}] for this request, the decision recorded [${fact.data.risk_tags.join(', ')}]`);
    return true;
  }

  /**
   * The run was started by the API: DecisionRequested carries the API's signature over the whole start (the
   * request, the evaluation, the policies, counter increments, windows, callback, workflow id), checked as
   * stored (the events' bytes, not their parsed form). Without keys, everything but the signature.
   */
  private checkStart(events: StoredEvent[]): void {
    const requested = firstOfType(events, 'DecisionRequested');
    const evaluated = firstOfType(events, 'PolicyEvaluated');
    if (!requested || !evaluated) return; // reported by reEvaluate
    const rawRequested = this.byId.get(requested.event_id);
    const rawEvaluated = this.byId.get(evaluated.event_id);
    const validated = rawRequested !== undefined && this.validatedAsStored.has(rawRequested) && rawEvaluated !== undefined && this.validatedAsStored.has(rawEvaluated);
    const workflowId = requested.metadata['workflow_id'];
    const p = prepareRunStart(rawRequested?.data ?? requested.data, rawEvaluated?.data ?? evaluated.data, typeof workflowId === 'string' ? workflowId : undefined, { validated });
    if (!p.ok) return this.startProblem(requested, p.reason);
    if (!this.opts.keys) return;
    const check = prepareDocumentSignature(p.signature, this.opts.keys, this.keyCache);
    if (!check.ok) return this.startProblem(requested, check.result.ok ? 'signature unchecked' : startSignatureProblem(check.result));
    const v = ed25519Verify(check.x, Buffer.from(canonicalJson(p.doc), 'utf8'), check.sig) ? check.success : check.failure;
    if (!v.ok) this.startProblem(requested, startSignatureProblem(v));
  }

  private startProblem(requested: StoredEvent, text: string): void {
    this.divergences.push({ stream_id: requested.stream_id, position: requested.position, problem: `run start not attested by Countersign: ${text}` });
  }

  /** Re-derives the decision from the recorded policy versions, request, facts and clock. */
  private reEvaluate(events: StoredEvent[], policyEvents: Map<string, EventData<'PolicyActivated'>>): boolean {
    const view = foldRun(events.map(asRunEvent));
    const requested = firstOfType(events, 'DecisionRequested');
    const evaluated = firstOfType(events, 'PolicyEvaluated');
    if (!view || !requested || !evaluated) {
      this.divergences.push({ stream_id: events[0]!.stream_id, position: events[0]!.position, problem: 'run has no request or no evaluation' });
      return false;
    }
    const req = requested.data as EventData<'DecisionRequested'>;
    const ev = evaluated.data as EventData<'PolicyEvaluated'>;
    const snapshot = this.snapshotFor(view.tenant_id, ev, policyEvents, evaluated);
    if (!snapshot) return false;
    const recorded = ev.evaluation;
    if (snapshot.hash !== recorded.snapshot_hash) {
      this.divergences.push({ stream_id: evaluated.stream_id, position: evaluated.position, problem: `snapshot hash ${snapshot.hash} differs from the recorded ${recorded.snapshot_hash}` });
      return false;
    }
    const catalogFact = recorded.facts['tool_catalog'];
    if (catalogFact !== undefined && !this.checkCatalogFact(view.tenant_id, req.request, catalogFact, evaluated)) return false;
    // evaluate() adds the recorded catalog tags to the request, as it did when the decision was made.
    // The tenant's approval_timeout, as the signed start recorded it, stands in for defaulted timeouts again.
    const again = withApprovalTimeout(evaluate(snapshot, req.request, recorded.facts, new Date(recorded.now)), req.start?.windows.approval_timeout_sec);
    if (again.decision !== recorded.decision || again.matched_rule !== recorded.matched_rule) {
      this.divergences.push({ stream_id: evaluated.stream_id, position: evaluated.position, problem: `re-evaluation gives ${again.decision} (${again.matched_rule}), recorded ${recorded.decision} (${recorded.matched_rule})` });
      return false;
    }
    if (canonicalJson(again.judgment ?? null) !== canonicalJson(recorded.judgment ?? null)) {
      this.divergences.push({ stream_id: evaluated.stream_id, position: evaluated.position, problem: 're-evaluation gives other judgment rules (checklist) than recorded' });
      return false;
    }
    if (!sameJson(approvalSettings(again), approvalSettings(recorded))) {
      this.divergences.push({ stream_id: evaluated.stream_id, position: evaluated.position, problem: 're-evaluation gives other approval settings (approvers, quorum, timeouts, levels) than recorded' });
      return false;
    }
    if (!this.reDeriveVerdicts(events, recorded)) return false;
    return this.checkEdits(events, snapshot, req, recorded);
  }

  /**
   * A run whose evaluator was asked: the decision after the verdicts is re-derived from the recorded
   * JudgmentEvaluated (afterVerdicts), never by asking the evaluator again.
   */
  private reDeriveVerdicts(events: StoredEvent[], recorded: EventData<'PolicyEvaluated'>['evaluation']): boolean {
    const i = events.findIndex((e) => e.type === 'JudgmentEvaluated');
    if (i < 0) return true;
    const judged = events[i]!;
    const fail = (problem: string) => {
      this.divergences.push({ stream_id: judged.stream_id, position: judged.position, problem });
      return false;
    };
    if (recorded.judgment === undefined || recorded.decision !== 'REQUIRE_APPROVAL') return fail('verdicts recorded for a run whose evaluation has no judgment rules');
    const next = afterVerdicts(recorded, (judged.data as EventData<'JudgmentEvaluated'>).verdicts);
    const after = events[i + 1];
    if (after === undefined) return true;
    if (next.kind === 'final') {
      const d = after.data as Partial<EventData<'DecisionFinalized'>>;
      if (after.type !== 'DecisionFinalized' || d.decision !== next.decision || d.matched_rule !== next.matched_rule || d.via !== 'evaluator') {
        return fail(`the recorded verdicts give ${next.decision} (${next.matched_rule}), the run recorded ${after.type} ${d.decision ?? ''}`);
      }
    } else if (after.type !== 'ApprovalRequested') {
      return fail(`the recorded verdicts leave the decision to people, the run recorded ${after.type}`);
    }
    return true;
  }

  /**
   * Approvals with edited arguments: each digest is its arguments', each edit re-derives from the run's snapshot,
   * facts and clock and is no looser than the run's evaluation, and the final decision carries the approved edit.
   */
  private checkEdits(events: StoredEvent[], snapshot: Snapshot, req: EventData<'DecisionRequested'>, recorded: Evaluation): boolean {
    const problem = this.editProblem;
    const approvedBy: string[] = [];
    let approved: string | undefined;
    for (const e of events) {
      if (e.type !== 'ApprovalGranted') continue;
      const a = e.data as EventData<'ApprovalGranted'>;
      if (!a.edit) continue;
      if (sha256Digest(a.edit.args) !== a.edit.args_digest) return problem(e, 'edited arguments do not match their recorded digest');
      const again = evaluate(snapshot, editedRequest(req.request, a.edit.args), recorded.facts, new Date(recorded.now));
      if (again.decision !== a.edit.evaluation.decision || again.matched_rule !== a.edit.evaluation.matched_rule || !sameJson(again.constraints, a.edit.evaluation.constraints)) {
        return problem(e, `re-evaluation of the edited arguments gives ${again.decision} (${again.matched_rule}), recorded ${a.edit.evaluation.decision} (${a.edit.evaluation.matched_rule})`);
      }
      const looser = checkEditNoLooser(recorded, again);
      if (!looser.ok) return problem(e, `an approval counted edited arguments looser than the request: ${looser.reason}`);
      approvedBy.push(a.approver_id);
      approved = a.edit.args_digest;
    }
    let final: StoredEvent | undefined;
    for (const e of events) {
      if (e.type === 'DecisionFinalized' && (e.data as EventData<'DecisionFinalized'>).via === 'approval') {
        final = e;
        break;
      }
    }
    const finalDigest = final ? (final.data as EventData<'DecisionFinalized'>).edited_args_digest : undefined;
    if (final && finalDigest !== undefined && finalDigest !== approved) return problem(final, `the decision carries edited arguments ${finalDigest} that no approval approved`);
    if (finalDigest !== undefined) this.editedRuns.push({ decision_id: req.decision_id, args_digest: req.args_digest, edited_args_digest: finalDigest, approved_by: approvedBy });
    return true;
  }
}
