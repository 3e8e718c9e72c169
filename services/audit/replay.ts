import type { PublicKeySet, SignedReceipt } from '../../schemas/receipt.ts';
import type { PolicyChain } from '../lifecycle/policy-chain.ts';
import { UPCASTERS, type UpcasterRegistry } from '../events/upcast.ts';
import { sha256Digest } from '../receipts/canonical.ts';
import { ReplayShard, shardOfStream, type Contested, type Divergence, type EditedRun, type FoldOut, type PolicyVersion, type RecordProblem, type RunOut, type SharedFacts, type ShardOptions } from './replay-shard.ts';
import { ShardThreads } from './replay-threads.ts';
import type { TenantMembership } from './tenant-membership.ts';

export { plainStoredEvent } from './replay-shard.ts';
export type { Divergence, PolicyVersion } from './replay-shard.ts';

export type ReplayReport = {
  records: number;
  events: number;
  duplicates: number;
  streams: number;
  runs: number;
  receipts: SignedReceipt[];
  unsigned_runs: string[];
  policies: Record<string, PolicyVersion[]>;
  /** Each policy's lifecycle folded from its stream (issue 7): versions with lineage, draft, reviews, status. */
  policy_chains: Record<string, PolicyChain>;
  /** Each tenant's stream folded: members, roles, groups (who joined and left when), agent permissions, keys, settings. */
  memberships: Record<string, TenantMembership>;
  re_evaluated: number;
  /** Runs approved with edited arguments: both digests, and who approved the edit (each edit re-derived). */
  edited_runs: EditedRun[];
  divergences: Divergence[];
};

/** One raw record from a source; `where` says where it sat (a Kafka offset, a Postgres position). */
export type RawRecord = { value: string | null; where: string };

export type ReplayOptions = {
  /** Public keys for receipt and policy signatures; null skips signature checks (reported by the CLI). */
  keys: PublicKeySet | null;
  tenantId?: string | undefined;
  /** Only runs that started at or after this time are rebuilt (chains are still checked everywhere). */
  since?: Date | undefined;
  upcasters?: UpcasterRegistry;
  /** The schema version upcasters lift to. Default: CURRENT_SCHEMA_VERSION (tests of upcasters set it). */
  schemaVersion?: number;
  /** The auditor's clock, for the receipt-coverage rule below. Default: the wall clock at finish(). */
  now?: Date;
  /**
   * A final run must be covered by a receipt once this long has passed since its last event (default 10 min):
   * the worker signs within seconds, so an older final run without one was truncated, or an event was forged
   * after its receipt. Younger runs are reported as unsigned (in flight), not as divergences.
   */
  receiptGraceMs?: number;
  /** Receipts handed out earlier (e.g. `--anchor receipts.jsonl`): each must be rebuilt from the log, identical. */
  anchors?: readonly SignedReceipt[];
  /**
   * Worker threads, each the shard of the log's streams its stream ids hash to (replay-threads.ts), started
   * once `after` records have arrived (a small log is quicker checked on the caller's thread). Default: one per
   * core (at most 4), after 2000 records; `false`: none. The report is the same either way. Threads are started
   * (and their code compiled) once per process: a later replay takes over those a finished one left.
   */
  parallel?: { workers?: number; after?: number } | false;
};

export const DEFAULT_RECEIPT_GRACE_MS = 10 * 60_000;
const DEFAULT_PARALLEL_AFTER = 2000;
const STREAM_ID_FIELD = '"stream_id":"';

/**
 * The shard a record goes to, from its JSON text alone (the caller never parses): the first `"stream_id":"…"`
 * in it, hashed as shardOfStream hashes the parsed id. A record whose text misleads (an escaped character in
 * the id, the same key earlier inside its data) is found out by the shard that parses it and handed over.
 */
export function shardOfRecord(value: string | null, shards: number): number {
  if (value === null || shards === 1) return 0;
  const at = value.indexOf(STREAM_ID_FIELD);
  if (at < 0) return 0;
  const start = at + STREAM_ID_FIELD.length;
  const end = value.indexOf('"', start);
  return end < 0 ? 0 : shardOfStream(value.slice(start, end), shards);
}

/**
 * The auditor's replay, from one source alone (the Kafka topic, or the Postgres log). Pure over its input:
 * parse and deduplicate records by event id, check each stream's hash chain on the events as stored, upcast,
 * rebuild each run's receipt with the same fold the worker used and check the recorded signature against it,
 * check each policy's version chain and signatures, and re-derive each decision from the recorded policy
 * snapshot and facts. Every divergence names the first bad position; nothing in a record can make it throw.
 *
 * The work is split by stream over shards (replay-shard.ts), on worker threads for a large log: a shard does
 * everything for its streams (parse, hash, chain, receipts, signatures, re-evaluation); what runs need from
 * other streams (policy activations, tool catalogs, tenants' members) is merged in log order and given to
 * every shard; the shards' findings are merged by where each sits in the log, so the report is the one a
 * single shard gives, byte for byte.
 *
 * What a hash chain cannot show (see services/events/README.md): someone who can rewrite the database may
 * recompute every hash. Signatures (receipts, policy activations) and the rules below are what catch them;
 * deleting whole appends at a stream's tail is caught only where something else refers to them.
 */
export class Replay {
  private records = 0;
  /** Records held back until the replay knows whether it will use threads. */
  private pending: RawRecord[] = [];
  private inline: ReplayShard | null = null;
  private threads: ShardThreads | null = null;
  private readonly shardOpts: Omit<ShardOptions, 'shard' | 'shards' | 'upcasters'>;

  constructor(private readonly opts: ReplayOptions) {
    this.shardOpts = {
      keys: opts.keys,
      tenantId: opts.tenantId,
      sinceMs: opts.since?.getTime(),
      receiptGraceMs: opts.receiptGraceMs ?? DEFAULT_RECEIPT_GRACE_MS,
      ...(opts.schemaVersion !== undefined ? { schemaVersion: opts.schemaVersion } : {}),
    };
    // Upcasters are functions, which do not cross to a thread: custom ones keep the replay on this one.
    if (opts.parallel === false || (opts.upcasters !== undefined && opts.upcasters !== UPCASTERS)) this.inline = this.inlineShard();
  }

  add(record: RawRecord): void {
    const index = this.records++;
    if (this.threads) {
      this.threads.route(shardOfRecord(record.value, this.threads.count), index, record.value, record.where);
      return;
    }
    if (this.inline) {
      this.inline.add(index, record.value, record.where);
      return;
    }
    this.pending.push(record);
    if (this.pending.length >= (this.opts.parallel ? this.opts.parallel.after ?? DEFAULT_PARALLEL_AFTER : DEFAULT_PARALLEL_AFTER)) this.start();
  }

  finish(): ReplayReport {
    const threads = this.threads;
    this.threads = null;
    try {
      if (!threads && !this.inline) {
        this.inline = this.inlineShard();
        this.drainPending(this.inline);
      }
      const report = threads ? this.finishThreads(threads) : this.finishInline(this.inline!);
      threads?.release();
      return report;
    } catch (err) {
      void threads?.close();
      throw err;
    } finally {
      this.inline = null;
    }
  }

  /** Threads for the rest of the log, and the records held back handed to them (or kept here without threads). */
  private start(): void {
    const p = this.opts.parallel;
    this.threads = ShardThreads.acquire(this.shardOpts, p ? p.workers : undefined);
    if (!this.threads) this.inline = this.inlineShard();
    const held = this.pending;
    this.pending = [];
    held.forEach((r, index) => {
      if (this.threads) this.threads.route(shardOfRecord(r.value, this.threads.count), index, r.value, r.where);
      else this.inline!.add(index, r.value, r.where);
    });
  }

  private inlineShard(): ReplayShard {
    return new ReplayShard({ ...this.shardOpts, ...(this.opts.upcasters ? { upcasters: this.opts.upcasters } : {}), shard: 0, shards: 1 });
  }

  private drainPending(shard: ReplayShard): void {
    this.pending.forEach((r, index) => shard.add(index, r.value, r.where));
    this.pending = [];
  }

  private finishInline(shard: ReplayShard): ReplayReport {
    const fold = shard.fold(new Map());
    const facts = sharedFacts([fold]);
    return this.report([fold], [shard.checkRuns(facts, this.nowMs())], [], 0);
  }

  private finishThreads(threads: ShardThreads): ReplayReport {
    threads.handOver(threads.misrouted());
    const { contested, problems, duplicates } = settleAcrossShards(threads);
    const folds = threads.fold(contested);
    const runs = threads.runs(sharedFacts(folds), this.nowMs());
    return this.report(folds, runs, problems, duplicates);
  }

  private nowMs(): number {
    return (this.opts.now ?? new Date()).getTime();
  }

  /** The shards' findings, merged by where each sits in the log: what one shard over the whole log reports. */
  private report(folds: FoldOut[], runShards: RunOut[][], contestedProblems: RecordProblem[], contestedDuplicates: number): ReplayReport {
    const problems = [...folds.flatMap((f) => f.problems), ...contestedProblems].sort((a, b) => a.index - b.index);
    const streams = folds.flatMap((f) => f.folded).sort((a, b) => a.order - b.order);
    const runs = runShards.flat().sort((a, b) => a.order - b.order);
    const policies: Record<string, PolicyVersion[]> = {};
    const chains: Record<string, PolicyChain> = {};
    const memberships: Record<string, TenantMembership> = {};
    for (const s of streams) {
      for (const [key, version] of s.policies) (policies[key] ??= []).push(version);
      if (s.chain) chains[s.chain[0]] = s.chain[1];
      if (s.membership) memberships[s.membership[0]] = s.membership[1];
    }
    const receipts = runs.flatMap((r) => r.receipts);
    const divergences = [...problems.map((p) => p.divergence), ...streams.flatMap((s) => s.divergences), ...runs.flatMap((r) => r.divergences)];
    divergences.push(...this.checkAnchors(receipts));
    return {
      records: this.records,
      events: folds.reduce((n, f) => n + f.events, 0),
      duplicates: folds.reduce((n, f) => n + f.duplicates, contestedDuplicates),
      streams: folds.reduce((n, f) => n + f.streams, 0),
      runs: folds.reduce((n, f) => n + f.runs, 0),
      receipts,
      unsigned_runs: runs.flatMap((r) => (r.unsigned === null ? [] : [r.unsigned])),
      policies,
      policy_chains: chains,
      memberships,
      re_evaluated: runs.filter((r) => r.reEvaluated).length,
      edited_runs: runs.flatMap((r) => r.edited),
      divergences,
    };
  }

  private checkAnchors(receipts: SignedReceipt[]): Divergence[] {
    const out: Divergence[] = [];
    if (!this.opts.anchors?.length) return out;
    for (const a of this.opts.anchors) {
      if (this.opts.tenantId && a.receipt.tenant_id !== this.opts.tenantId) continue;
      const mine = receipts.filter((x) => x.receipt.decision_id === a.receipt.decision_id);
      const digest = sha256Digest(a.receipt);
      if (mine.length === 0) {
        out.push({ stream_id: a.receipt.stream_id, position: null, problem: `anchored receipt of ${a.receipt.decision_id} (version ${a.receipt.head_version}) is not in the log: the run was deleted or truncated` });
      } else if (!mine.some((x) => sha256Digest(x.receipt) === digest)) {
        out.push({ stream_id: a.receipt.stream_id, position: null, problem: `anchored receipt of ${a.receipt.decision_id} differs from the one rebuilt from the log` });
      }
    }
    return out;
  }
}

/** The facts runs depend on, from every shard's streams in log order (a later stream's replaces an earlier one's). */
function sharedFacts(folds: FoldOut[]): SharedFacts {
  const streams = folds.flatMap((f) => f.folded).sort((a, b) => a.order - b.order);
  return {
    activations: streams.flatMap((s) => s.activations),
    catalogs: streams.flatMap((s) => (s.catalog ? [s.catalog] : [])),
    timelines: streams.flatMap((s) => (s.timeline ? [s.timeline] : [])),
  };
}

/**
 * Event ids held by more than one shard (one id in streams of different shards: a forged copy, never a
 * transport duplicate, whose stream is the same): the first copy in arrival order is kept, each later one is a
 * duplicate or a divergence at its own arrival index, exactly as one shard would have judged them.
 */
function settleAcrossShards(threads: ShardThreads): { contested: Contested; problems: RecordProblem[]; duplicates: number } {
  const prints = threads.fingerprints();
  const shared = new Set<number>();
  for (let s = 0; s < prints.length; s++) {
    for (let t = s + 1; t < prints.length; t++) {
      const a = prints[s]!;
      const b = prints[t]!;
      for (let i = 0, j = 0; i < a.length && j < b.length;) {
        if (a[i]! < b[j]!) i++;
        else if (a[i]! > b[j]!) j++;
        else { shared.add(a[i]!); i++; j++; }
      }
    }
  }
  const contested: Contested = new Map();
  const problems: RecordProblem[] = [];
  let duplicates = 0;
  if (shared.size === 0) return { contested, problems, duplicates };
  const byId = new Map<string, ReturnType<ShardThreads['copies']>>();
  for (const c of threads.copies([...shared])) (byId.get(c.event_id) ?? byId.set(c.event_id, []).get(c.event_id)!).push(c);
  for (const [id, copies] of byId) {
    if (new Set(copies.map((c) => c.shard)).size < 2) continue; // all on one shard (or another id's fingerprint): it judges them
    copies.sort((a, b) => a.index - b.index);
    const first = copies[0]!;
    contested.set(id, first.index);
    for (const c of copies.slice(1)) {
      if (c.hash !== first.hash || c.position !== first.position) {
        problems.push({ index: c.index, divergence: { stream_id: c.stream_id, position: c.position, problem: `event id ${id} appears twice with different content` } });
      } else duplicates += 1;
    }
  }
  return { contested, problems, duplicates };
}
