import type { Decision } from '../../schemas/decision-kind.ts';
import type { Weekday } from '../../schemas/policy.ts';
import { isTimeZone } from '../../schemas/policy.ts';

/**
 * The natural-language rule compiler: a small, deterministic grammar of common policy sentences,
 * compiled when a policy is saved into an ordinary structured rule (shown back as `interpreted`).
 * It never guesses: a word it does not understand is an error naming that word. The grammar is
 * documented in services/policy/README.md; keep the two in step.
 */

export type InterpretedRule = {
  match: {
    tool?: string | string[];
    operation?: string | string[];
    environment?: string;
    risk_tags?: string[];
    agent?: string;
    time?: { days?: Weekday[]; after?: string; before?: string; timezone: string };
  };
  condition?: string;
  limit?: { kind: 'rate' | 'cost'; max: number; window: string; per: 'agent' | 'tenant'; field?: string };
  decision: Decision;
  reason: string;
  approval?: { approvers: string[] };
  /** "Flag as high-risk if …": the risk tag a request that meets the condition is flagged with. */
  flag?: string;
};

export type NlResult = { ok: true; rule: InterpretedRule } | { ok: false; message: string };

const STRUCTURED_HINT =
  'write it as a structured rule instead, e.g. { name: big-refunds, match: { tool: payment_tool, operation: Refund }, condition: "amount > 500", decision: REQUIRE_APPROVAL }';

/** Nouns the grammar knows, as (words, tool, operations). Longest first so "bulk emails" wins over "emails". */
const NOUNS: { words: string[]; tool: string; operation?: string[] }[] = [
  { words: ['subscription', 'changes'], tool: 'payment_tool', operation: ['SubscriptionChange'] },
  { words: ['subscription', 'change'], tool: 'payment_tool', operation: ['SubscriptionChange'] },
  { words: ['bulk', 'emails'], tool: 'email_tool', operation: ['SendBulkEmail'] },
  { words: ['bulk', 'email'], tool: 'email_tool', operation: ['SendBulkEmail'] },
  { words: ['file', 'deletions'], tool: 'file_tool', operation: ['FileDelete'] },
  { words: ['file', 'deletes'], tool: 'file_tool', operation: ['FileDelete'] },
  { words: ['file', 'overwrites'], tool: 'file_tool', operation: ['FileOverwrite'] },
  { words: ['file', 'moves'], tool: 'file_tool', operation: ['FileMove'] },
  { words: ['database', 'deletes'], tool: 'database_tool', operation: ['DatabaseDelete'] },
  { words: ['database', 'deletions'], tool: 'database_tool', operation: ['DatabaseDelete'] },
  { words: ['database', 'mutations'], tool: 'database_tool', operation: ['DatabaseMutate'] },
  { words: ['database', 'writes'], tool: 'database_tool', operation: ['DatabaseMutate'] },
  { words: ['database', 'backups'], tool: 'database_tool', operation: ['DatabaseBackup'] },
  { words: ['refunds'], tool: 'payment_tool', operation: ['Refund'] },
  { words: ['refund'], tool: 'payment_tool', operation: ['Refund'] },
  { words: ['payments'], tool: 'payment_tool', operation: ['Payment'] },
  { words: ['payment'], tool: 'payment_tool', operation: ['Payment'] },
  { words: ['deploys'], tool: 'deploy_tool', operation: ['Deploy'] },
  { words: ['deploy'], tool: 'deploy_tool', operation: ['Deploy'] },
  { words: ['deployments'], tool: 'deploy_tool', operation: ['Deploy'] },
  { words: ['deployment'], tool: 'deploy_tool', operation: ['Deploy'] },
  { words: ['rollbacks'], tool: 'deploy_tool', operation: ['Rollback'] },
  { words: ['emails'], tool: 'email_tool', operation: ['SendEmail', 'SendBulkEmail'] },
  { words: ['email'], tool: 'email_tool', operation: ['SendEmail', 'SendBulkEmail'] },
];

const ENVIRONMENTS: Record<string, string> = { production: 'prod', prod: 'prod', staging: 'staging', dev: 'dev', development: 'dev', test: 'test' };
const RISK_ADJECTIVES = new Set(['external', 'destructive', 'write', 'read', 'internal']);
const DAY_WORDS: Record<string, Weekday[]> = {
  weekdays: ['Mon', 'Tue', 'Wed', 'Thu', 'Fri'],
  weekends: ['Sat', 'Sun'],
  weekend: ['Sat', 'Sun'],
};
for (const [full, short] of [
  ['sunday', 'Sun'], ['monday', 'Mon'], ['tuesday', 'Tue'], ['wednesday', 'Wed'], ['thursday', 'Thu'], ['friday', 'Fri'], ['saturday', 'Sat'],
] as const) {
  DAY_WORDS[full] = [short];
  DAY_WORDS[`${full}s`] = [short];
  DAY_WORDS[short.toLowerCase()] = [short];
}
const PERIODS: Record<string, string> = {
  'per-minute': '1m', 'per-hour': '1h', hourly: '1h', 'per-day': '1d', daily: '1d', 'per-week': '1w', weekly: '1w', 'per-month': '30d', monthly: '30d',
  minute: '1m', hour: '1h', day: '1d', week: '1w', month: '30d',
};
const TOOL_IDENT = /^`?([a-z][a-z0-9]*(?:[_.-][a-z0-9]+)+)`?$/;

class Cursor {
  i = 0;
  constructor(readonly words: string[], readonly lower: string[]) {}
  get done(): boolean {
    return this.i >= this.words.length;
  }
  peek(k = 0): string | undefined {
    return this.lower[this.i + k];
  }
  raw(k = 0): string | undefined {
    return this.words[this.i + k];
  }
  /** Consumes one optional word if it is any of these. */
  skipAny(...ws: string[]): void {
    if (ws.includes(this.lower[this.i] ?? '')) this.i++;
  }
  /** Consumes the words if they come next (all of them), and says whether it did. */
  eat(...ws: string[]): boolean {
    if (ws.every((w, k) => this.lower[this.i + k] === w)) {
      this.i += ws.length;
      return true;
    }
    return false;
  }
}

class NlError extends Error {}

function fail(c: Cursor, what: string): never {
  const word = c.raw() ?? '(end of sentence)';
  throw new NlError(`did not understand "${word}" (word ${c.i + 1}): expected ${what}`);
}

/** "$500", "$1,000.50", "500 USD", "500 dollars", "$5k". */
function money(c: Cursor): number | undefined {
  const w = c.peek();
  if (w === undefined) return undefined;
  const m = /^\$?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?(k)?$/.exec(w);
  if (m === null || (!w.startsWith('$') && !['usd', 'dollars', 'eur', 'gbp'].includes(c.peek(1) ?? '') && !/^\d/.test(w))) return undefined;
  c.i++;
  if (!w.startsWith('$')) c.skipAny('usd', 'dollars');
  const n = Number(m[1]!.replaceAll(',', '') + (m[2] !== undefined ? `.${m[2]}` : ''));
  return m[3] !== undefined ? n * 1000 : n;
}

function requireMoney(c: Cursor): number {
  const n = money(c);
  if (n === undefined) fail(c, 'an amount such as $500');
  return n;
}

/** "5pm", "5:30pm", "5 pm", "17:00". */
function clock(c: Cursor): string | undefined {
  const w = c.peek();
  if (w === undefined) return undefined;
  let m = /^(\d{1,2})(?::(\d{2}))?(am|pm)?$/.exec(w);
  if (m === null) return undefined;
  let suffix = m[3];
  let used = 1;
  if (suffix === undefined && (c.peek(1) === 'am' || c.peek(1) === 'pm')) {
    suffix = c.peek(1);
    used = 2;
  }
  let h = Number(m[1]);
  const min = m[2] === undefined ? 0 : Number(m[2]);
  if (suffix === undefined && m[2] === undefined) return undefined;
  if (suffix !== undefined) {
    if (h < 1 || h > 12) return undefined;
    h = (h % 12) + (suffix === 'pm' ? 12 : 0);
  }
  if (h > 23 || min > 59) return undefined;
  c.i += used;
  m = null;
  return `${String(h).padStart(2, '0')}:${String(min).padStart(2, '0')}`;
}

function days(c: Cursor): Weekday[] | undefined {
  const first = DAY_WORDS[c.peek() ?? ''];
  if (first === undefined) return undefined;
  c.i++;
  const out = [...first];
  for (;;) {
    const sep = c.peek();
    if ((sep === 'and' || sep === 'or' || sep === ',') && DAY_WORDS[c.peek(1) ?? ''] !== undefined) {
      out.push(...DAY_WORDS[c.peek(1)!]!);
      c.i += 2;
    } else break;
  }
  return [...new Set(out)];
}

type Draft = Omit<InterpretedRule, 'decision' | 'reason'> & { decision?: Decision; flagged?: boolean };

/** Words that open a condition clause ("… if the description contains 'urgent'"). */
const CLAUSE_WORDS = new Set(['if', 'when', 'where', 'whose']);

function verb(c: Cursor, d: Draft): void {
  if (c.eat('require')) {
    const group: string[] = [];
    while (!c.done && c.peek() !== 'approval' && group.length < 3) {
      group.push(c.raw()!);
      c.i++;
    }
    if (!c.eat('approval')) fail(c, '"approval" after "require"');
    if (!(c.eat('for') || c.eat('of') || c.eat('on'))) fail(c, '"for" after "approval"');
    d.decision = 'REQUIRE_APPROVAL';
    d.approval = { approvers: group.length === 0 ? ['approvers'] : [group.join('-').toLowerCase()] };
    return;
  }
  if (c.eat('auto-approve') || c.eat('auto', 'approve') || c.eat('allow') || c.eat('approve') || c.eat('permit')) {
    d.decision = 'ALLOW';
    return;
  }
  if (c.eat('flag') || c.eat('mark') || c.eat('tag')) {
    c.skipAny('as');
    const tag = c.peek();
    if (tag === undefined || !/^[a-z0-9][a-z0-9._:-]{0,99}$/.test(tag) || CLAUSE_WORDS.has(tag)) fail(c, 'the risk tag to flag with, e.g. "Flag as high-risk if …"');
    c.i++;
    d.flag = tag;
    d.flagged = true;
    return;
  }
  if (c.eat('deny') || c.eat('block') || c.eat('forbid') || c.eat('reject') || c.eat('prevent') || c.eat('disallow') || c.eat('no')) {
    d.decision = 'DENY';
  }
}

function subject(c: Cursor, d: Draft): void {
  // "Flag as high-risk if …": no subject, the rule is about every request its policy applies to.
  if (CLAUSE_WORDS.has(c.peek() ?? '')) return;
  c.skipAny('all', 'any');
  if (c.eat('requests') || c.eat('request') || c.eat('calls') || c.eat('actions')) return;
  const tags: string[] = [];
  for (;;) {
    const w = c.peek();
    if (w !== undefined && ENVIRONMENTS[w] !== undefined && c.peek(1) !== undefined) {
      d.match.environment = ENVIRONMENTS[w];
      c.i++;
    } else if (w !== undefined && RISK_ADJECTIVES.has(w) && c.peek(1) !== undefined) {
      tags.push(w);
      c.i++;
    } else break;
  }
  if (tags.length > 0) d.match.risk_tags = tags;
  for (const noun of NOUNS) {
    if (c.eat(...noun.words)) {
      d.match.tool = noun.tool;
      if (noun.operation !== undefined) d.match.operation = noun.operation.length === 1 ? noun.operation[0]! : noun.operation;
      return;
    }
  }
  const ident = TOOL_IDENT.exec(c.raw() ?? '');
  if (ident !== null) {
    d.match.tool = ident[1]!;
    c.i++;
    c.skipAny('calls', 'call');
    return;
  }
  fail(c, 'what the rule is about: refunds, payments, deploys, rollbacks, emails, file deletions, database deletes, … or a tool name such as shell_exec');
}

function amountCondition(op: string, n: number): string {
  return `amount ${op} ${n}`;
}

function modifiers(c: Cursor, d: Draft): void {
  const conditions: string[] = [];
  while (!c.done) {
    const at = c.i;
    // Amounts.
    if (c.eat('over') || c.eat('above') || c.eat('exceeding') || c.eat('more', 'than') || c.eat('greater', 'than')) {
      conditions.push(amountCondition('>', requireMoney(c)));
      continue;
    }
    if (c.eat('under') || c.eat('below') || c.eat('less', 'than')) {
      conditions.push(amountCondition('<', requireMoney(c)));
      continue;
    }
    if (c.eat('up', 'to') || c.eat('of', 'up', 'to') || c.eat('of', 'at', 'most')) {
      conditions.push(amountCondition('<=', requireMoney(c)));
      continue;
    }
    if (c.eat('between')) {
      // Inclusive at both ends: "between $1 and $5" allows $1 and $5.
      const lo = requireMoney(c);
      if (!c.eat('and')) fail(c, '"and" in "between $1 and $5"');
      const hi = requireMoney(c);
      if (hi < lo) fail(c, `an upper bound at least ${lo}`);
      conditions.push(amountCondition('>=', lo), amountCondition('<=', hi));
      continue;
    }
    if (CLAUSE_WORDS.has(c.peek() ?? '')) {
      c.i++;
      conditions.push(...clauses(c));
      continue;
    }
    if (c.eat('tagged') || c.eat('with', 'risk', 'tag') || c.eat('with', 'risk', 'tags')) {
      const tags = [...(d.match.risk_tags ?? [])];
      do {
        const t = c.peek();
        if (t === undefined || !/^[a-z0-9][a-z0-9._:-]{0,99}$/.test(t)) fail(c, 'a risk tag such as destructive');
        tags.push(t);
        c.i++;
      } while (c.eat('and') || c.eat(','));
      d.match.risk_tags = [...new Set(tags)];
      continue;
    }
    if (c.eat('of', 'at', 'least')) {
      conditions.push(amountCondition('>=', requireMoney(c)));
      continue;
    }
    if (c.peek() === 'of' || c.peek() === 'for') {
      const save = c.i;
      c.i++;
      const n = money(c);
      if (n !== undefined) {
        if (c.eat('or', 'less')) conditions.push(amountCondition('<=', n));
        else if (c.eat('or', 'more')) conditions.push(amountCondition('>=', n));
        else conditions.push(amountCondition('==', n));
        continue;
      }
      c.i = save;
    }
    // Environment or time zone: "in prod", "in America/New_York".
    if (c.peek() === 'in') {
      const w = c.peek(1) ?? '';
      if (ENVIRONMENTS[w] !== undefined) {
        d.match.environment = ENVIRONMENTS[w];
        c.i += 2;
        continue;
      }
      const zone = (c.raw(1) ?? '').replace(/^\(|\)$/g, '');
      if ((zone.includes('/') || zone === 'UTC') && isTimeZone(zone)) {
        d.match.time = { ...(d.match.time ?? { timezone: 'UTC' }), timezone: zone };
        c.i += 2;
        continue;
      }
      c.i++;
      fail(c, 'an environment (prod, staging, dev, test) or an IANA time zone (America/New_York) after "in"');
    }
    // Agents: "on support agents", "for billing agents", "by agent support-bot".
    if (['on', 'for', 'by', 'from'].includes(c.peek() ?? '') && (c.peek(2) === 'agents' || c.peek(2) === 'agent')) {
      const word = c.raw(1)!;
      if (!/^[A-Za-z0-9._-]+$/.test(word)) fail(c, 'an agent name');
      d.match.agent = `*${word.toLowerCase()}*`;
      c.i += 3;
      continue;
    }
    if (['on', 'for', 'by', 'from'].includes(c.peek() ?? '') && c.peek(1) === 'agent' && /^[A-Za-z0-9._:@-]+$/.test(c.raw(2) ?? '')) {
      d.match.agent = c.raw(2)!;
      c.i += 3;
      continue;
    }
    // Time: "after 5pm", "before 09:00", "on Fridays", "on weekdays".
    if (c.eat('after')) {
      const t = clock(c);
      if (t === undefined) fail(c, 'a time such as 5pm or 17:00');
      d.match.time = { ...(d.match.time ?? { timezone: 'UTC' }), after: t };
      continue;
    }
    if (c.eat('before')) {
      const t = clock(c);
      if (t === undefined) fail(c, 'a time such as 9am or 09:00');
      d.match.time = { ...(d.match.time ?? { timezone: 'UTC' }), before: t };
      continue;
    }
    if (c.peek() === 'on' || c.peek() === 'at') {
      c.i++;
      const ds = days(c);
      if (ds !== undefined) {
        d.match.time = { ...(d.match.time ?? { timezone: 'UTC' }), days: ds };
        continue;
      }
      c.i = at;
    }
    const ds = days(c);
    if (ds !== undefined) {
      d.match.time = { ...(d.match.time ?? { timezone: 'UTC' }), days: ds };
      continue;
    }
    fail(c, 'an amount (over $500, of $100 or less, between $1 and $5), a condition (if the description contains \'urgent\'), an environment (in prod), agents (on support agents), risk tags (tagged destructive) or a time (after 5pm, on Fridays)');
  }
  if (conditions.length > 0) d.condition = conditions.join(' && ');
}

/** Request fields a clause may name by a plain word; any other word names a context field. */
const ACTION_FIELDS: Record<string, string> = { tool: 'action.tool', operation: 'action.operation', topic: 'action.topic', capability: 'action.capability', agent: 'agent.id' };
const FIELD_PATH = /^[A-Za-z_][A-Za-z0-9_]{0,63}(?:\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,7}$/;
const PREDICATE_WORDS = new Set(['contains', 'contain', 'includes', 'does', "doesn't", 'is', "isn't", 'equals', 'exceeds', '>', '<', '>=', '<=', '==', '!=']);

/**
 * The field a clause is about: `backticked.path` as written (action.args.memo, context.x), or up to four plain
 * words joined with "_" as a context field ("the invoice description" is context.invoice_description).
 */
function field(c: Cursor): string {
  c.skipAny('the', 'its', 'their');
  const raw = c.raw() ?? '';
  const ticked = /^`([^`]+)`$/.exec(raw);
  if (ticked !== null) {
    if (!FIELD_PATH.test(ticked[1]!)) fail(c, 'a field path such as `action.args.memo`');
    c.i++;
    const path = ticked[1]!;
    return path.includes('.') ? path : `context.${path}`;
  }
  const parts: string[] = [];
  while (!c.done && !PREDICATE_WORDS.has(c.peek()!) && parts.length < 4) {
    const w = c.peek()!;
    if (!/^[a-z][a-z0-9_]{0,63}$/.test(w)) fail(c, 'a field name (plain words, or a `backticked.path`)');
    parts.push(w);
    c.i++;
  }
  if (parts.length === 0) fail(c, 'the field the condition is about, e.g. "if the description contains \'urgent\'"');
  if (!PREDICATE_WORDS.has(c.peek() ?? '')) fail(c, 'contains, is, is not, is over, is between, … after the field');
  const name = parts.join('_');
  return parts.length === 1 && ACTION_FIELDS[name] !== undefined ? ACTION_FIELDS[name] : `context.${name}`;
}

/** A literal: 'quoted' or "quoted" text, an amount or number, true/false, or one bare word (taken as text). */
function literal(c: Cursor): string {
  const raw = c.raw();
  if (raw === undefined) fail(c, 'a value');
  const quoted = /^(['"])(.*)\1$/s.exec(raw);
  if (quoted !== null) {
    c.i++;
    return JSON.stringify(quoted[2]);
  }
  const n = money(c);
  if (n !== undefined) return String(n);
  const w = c.peek()!;
  if (w === 'true' || w === 'false') {
    c.i++;
    return w;
  }
  if (/^[A-Za-z0-9_.:@-]{1,200}$/.test(raw) && !['and', 'or'].includes(w)) {
    c.i++;
    return JSON.stringify(raw);
  }
  fail(c, "a value: 'quoted text', a number or an amount");
}

function literals(c: Cursor): string[] {
  const out = [literal(c)];
  // Commas are not words: "'fraud', 'chargeback'" arrives as two quoted words in a row.
  for (;;) {
    if (c.peek() === 'or' && c.peek(1) !== undefined && !CLAUSE_WORDS.has(c.peek(1)!)) c.i++;
    else if (!/^['"]/.test(c.raw() ?? '')) return out;
    out.push(literal(c));
  }
}

/** One predicate on a field, as CEL. "contains" is false for an absent field; every other test fails closed on one. */
function predicate(c: Cursor, f: string): string {
  const present = `has(${f})`;
  const anyOf = (vs: string[]) => (vs.length === 1 ? `${f}.contains(${vs[0]})` : `(${vs.map((v) => `${f}.contains(${v})`).join(' || ')})`);
  if (c.eat('contains') || c.eat('includes')) return `(${present} && ${anyOf(literals(c))})`;
  if (c.eat('does', 'not', 'contain') || c.eat("doesn't", 'contain')) return `!(${present} && ${anyOf(literals(c))})`;
  const compare = (op: string) => {
    const n = money(c);
    if (n === undefined) fail(c, 'a number or an amount');
    return `${f} ${op} ${n}`;
  };
  if (c.eat('>=')) return compare('>=');
  if (c.eat('<=')) return compare('<=');
  if (c.eat('>') || c.eat('exceeds')) return compare('>');
  if (c.eat('<')) return compare('<');
  if (c.eat('==') || c.eat('equals')) return `${f} == ${literal(c)}`;
  if (c.eat('!=') || c.eat("isn't")) return `${f} != ${literal(c)}`;
  if (!c.eat('is')) fail(c, 'contains, is, is not, is over, is between, …');
  if (c.eat('not', 'one', 'of')) return `!(${f} in [${literals(c).join(', ')}])`;
  if (c.eat('one', 'of') || c.eat('any', 'of')) return `${f} in [${literals(c).join(', ')}]`;
  if (c.eat('over') || c.eat('above') || c.eat('more', 'than') || c.eat('greater', 'than')) return compare('>');
  if (c.eat('under') || c.eat('below') || c.eat('less', 'than')) return compare('<');
  if (c.eat('at', 'least')) return compare('>=');
  if (c.eat('at', 'most')) return compare('<=');
  if (c.eat('between')) {
    const lo = compare('>=');
    if (!c.eat('and')) fail(c, '"and" in "between 1 and 5"');
    return `${lo} && ${compare('<=')}`;
  }
  if (c.eat('not')) {
    c.skipAny('equal');
    if (c.peek() === 'to' && c.peek(1) !== undefined) c.i++;
    return `${f} != ${literal(c)}`;
  }
  c.skipAny('equal');
  if (c.peek() === 'to' && c.peek(1) !== undefined) c.i++;
  return `${f} == ${literal(c)}`;
}

/** "the description contains 'urgent' or 'rush' and the amount is over $100": every clause must hold. */
function clauses(c: Cursor): string[] {
  const out: string[] = [];
  for (;;) {
    const f = field(c);
    out.push(predicate(c, f));
    if (c.peek() === 'and' && c.peek(1) !== undefined && !['over', 'under', 'in'].includes(c.peek(1)!)) {
      c.i++;
      continue;
    }
    return out;
  }
}

/** "Per-day spend cap 50 USD", "Daily spend cap of $50 per agent". */
function spendCap(c: Cursor): Draft | undefined {
  const save = c.i;
  let window: string | undefined;
  if (c.peek() === 'per' && PERIODS[c.peek(1) ?? ''] !== undefined) {
    window = PERIODS[c.peek(1)!];
    c.i += 2;
  } else if (PERIODS[c.peek() ?? ''] !== undefined && (c.peek() ?? '').length > 3 && c.peek() !== 'minute') {
    window = PERIODS[c.peek()!];
    c.i++;
  }
  if (window === undefined || !(c.eat('spend', 'cap') || c.eat('spending', 'cap') || c.eat('spend', 'limit') || c.eat('cost', 'cap'))) {
    c.i = save;
    return undefined;
  }
  c.eat('of');
  const max = requireMoney(c);
  let per: 'agent' | 'tenant' = 'tenant';
  if (c.eat('per', 'agent')) per = 'agent';
  if (!c.done) fail(c, 'the end of the sentence (or "per agent")');
  return { match: {}, limit: { kind: 'cost', max, window, per, field: 'amount' }, decision: 'DENY' };
}

/** "Limit refunds to 10 per hour [per agent]". */
function rateLimit(c: Cursor): Draft | undefined {
  if (!c.eat('limit')) return undefined;
  const d: Draft = { match: {} };
  subject(c, d);
  if (!c.eat('to')) fail(c, '"to" and a count, e.g. "to 10 per hour"');
  const n = /^\d{1,9}$/.test(c.peek() ?? '') ? Number(c.peek()) : undefined;
  if (n === undefined) fail(c, 'a count such as 10');
  c.i++;
  c.skipAny('calls', 'requests', 'times');
  if (!c.eat('per') && !c.eat('a') && !c.eat('an') && !c.eat('every')) fail(c, '"per hour", "per day", …');
  const window = PERIODS[c.peek() ?? ''];
  if (window === undefined) fail(c, 'minute, hour, day, week or month');
  c.i++;
  let per: 'agent' | 'tenant' = 'agent';
  if (c.eat('per', 'tenant') || c.eat('per', 'workspace')) per = 'tenant';
  else c.eat('per', 'agent');
  if (!c.done) fail(c, 'the end of the sentence');
  return { ...d, limit: { kind: 'rate', max: n, window, per }, decision: 'DENY' };
}

function words(text: string): { words: string[]; lower: string[] } {
  const ws: string[] = [];
  // Quoted text is one word whatever it holds ('next day', "a, b"); elsewhere commas separate words.
  for (const m of text.trim().replace(/[.!]+$/, '').matchAll(/'[^']*'|"[^"]*"|[^\s'"]+(?:'[A-Za-z]+\b)*|['"]/g)) {
    const w = m[0];
    if (w.startsWith("'") || w.startsWith('"')) {
      ws.push(w);
      continue;
    }
    const cleaned = w.replace(/,/g, ' , ').replace(/(\d) , (?=\d{3}\b)/g, '$1,');
    for (const part of cleaned.split(/\s+/)) if (part !== '' && part !== ',') ws.push(part);
  }
  return { words: ws, lower: ws.map((w) => w.toLowerCase()) };
}

/**
 * Compiles one sentence. `decisionHint` is the rule's explicit decision or effect, if any: a sentence
 * without a verb ("refunds over $500") takes it, and a sentence whose verb disagrees with it is an error.
 */
export function compileSentence(text: string, decisionHint?: Decision): NlResult {
  const { words: ws, lower } = words(text);
  if (ws.length === 0) return { ok: false, message: `cannot compile an empty sentence; ${STRUCTURED_HINT}` };
  if (ws.length > 40) return { ok: false, message: `cannot compile "${text.slice(0, 60)}…": sentences are at most 40 words; ${STRUCTURED_HINT}` };
  const c = new Cursor(ws, lower);
  try {
    let d = spendCap(c) ?? rateLimit(c);
    if (d === undefined) {
      d = { match: {} };
      verb(c, d);
      if (d.decision === undefined && d.flagged !== true && decisionHint === undefined) fail(c, 'a verb: Require … approval for, Allow, Auto-approve, Deny, Block or No');
      subject(c, d);
      modifiers(c, d);
    }
    if (decisionHint !== undefined && d.decision !== undefined && d.decision !== decisionHint) {
      return { ok: false, message: `cannot compile "${text}": the sentence says ${d.decision} but the rule says ${decisionHint}` };
    }
    // A flagged request goes to people unless the rule's own decision or effect says otherwise.
    if (d.flagged === true) d.decision = decisionHint ?? 'REQUIRE_APPROVAL';
    if (d.flag !== undefined && d.condition === undefined) return { ok: false, message: `cannot compile "${text}": a flag needs a condition, e.g. "Flag as high-risk if the description contains 'urgent'"; ${STRUCTURED_HINT}` };
    const decision = d.decision ?? decisionHint!;
    if (decision === 'REQUIRE_APPROVAL' && d.approval === undefined) d.approval = { approvers: ['approvers'] };
    if (decision !== 'REQUIRE_APPROVAL') delete d.approval;
    const rule: InterpretedRule = { match: d.match, decision, reason: text.trim() };
    if (d.condition !== undefined) rule.condition = d.condition;
    if (d.limit !== undefined) rule.limit = d.limit;
    if (d.approval !== undefined) rule.approval = d.approval;
    if (d.flag !== undefined) rule.flag = d.flag;
    return { ok: true, rule };
  } catch (err) {
    if (err instanceof NlError) return { ok: false, message: `cannot compile "${text}": ${err.message}; ${STRUCTURED_HINT}` };
    throw err;
  }
}

/** A stable rule name from a sentence: "No production deploys after 5pm on Fridays" -> no-production-deploys-after-5pm-on-fridays. */
export function nameFromSentence(text: string): string {
  const slug = text.toLowerCase().replace(/\$/g, '').replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 80).replace(/-+$/, '');
  return slug === '' ? 'rule' : slug;
}
