import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DecisionRequest } from '../../../schemas/decision.ts';
import { CatalogEntry, RegisterCatalogBody, ToolCatalogFact } from '../../../schemas/tool-catalog.ts';
import {
  applyCatalogChange, catalogFact, catalogFromMcp, catalogFromOpenApi, catalogHash, catalogOf, catalogRiskTags, compile, EMPTY_CATALOG,
  enrichRequest, evaluate, simulate, sourceFromRegistration, type CatalogSource, type Snapshot,
} from '../../../services/policy/index.ts';

const NOW = new Date('2025-01-08T12:00:00Z');
const req = (r: Record<string, unknown>) => DecisionRequest.parse({ agent: { id: 'bot' }, ...r });
function snap(rules: unknown[]): Snapshot {
  const r = compile([{ document: { apiVersion: 'countersign/v1', kind: 'Policy', metadata: { id: 'p' }, rules }, version: 1 }], { circuitBreakers: false });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.snapshot;
}
const errorsOf = (r: { ok: boolean; errors?: Array<{ path: string; message: string }> }) => (r.ok ? [] : r.errors!.map((e) => `${e.path}: ${e.message}`));

const OPENAPI = {
  openapi: '3.0.3',
  info: { title: 'Billing', version: '1' },
  paths: {
    '/invoices': { get: { operationId: 'listInvoices' }, post: { operationId: 'createInvoice' }, parameters: [], summary: 'x' },
    '/invoices/{id}': { put: { operationId: 'replaceInvoice' }, patch: {}, delete: { operationId: 'deleteInvoice' }, head: {}, options: {}, trace: {} },
  },
};

describe('OpenAPI: tags by HTTP method', () => {
  it('GET/HEAD/OPTIONS/TRACE read; POST/PUT/PATCH write; DELETE write + destructive; METHOD /path without operationId', () => {
    const c = catalogFromOpenApi('billing', OPENAPI);
    expect(c.ok && c.catalog.entries.map((e) => [e.tool, e.operation, e.risk_tags.join('+')])).toEqual([
      ['billing', 'listInvoices', 'read'],
      ['billing', 'createInvoice', 'write'],
      ['billing', 'replaceInvoice', 'write'],
      ['billing', 'PATCH /invoices/{id}', 'write'],
      ['billing', 'deleteInvoice', 'write+destructive'],
      ['billing', 'HEAD /invoices/{id}', 'read'],
      ['billing', 'OPTIONS /invoices/{id}', 'read'],
      ['billing', 'TRACE /invoices/{id}', 'read'],
    ]);
  });
  it('accepts Swagger 2.0', () => {
    expect(catalogFromOpenApi('pets', { swagger: '2.0', paths: { '/pets': { delete: {} } } }).ok).toBe(true);
  });
});

describe('bad OpenAPI documents: every problem, with its path; nothing guessed', () => {
  const cases: Array<[string, unknown, string[]]> = [
    ['not an object', 'hello', ['(root): an OpenAPI document must be an object']],
    ['no paths', { openapi: '3.1.0', info: {} }, ['paths: an OpenAPI document needs a paths object']],
    ['no version', { paths: { '/a': { get: {} } } }, ['openapi: not an OpenAPI document: it has neither `openapi: 3.x` nor `swagger: "2.0"`']],
    ['a 1.x version', { openapi: '1.0', paths: {} }, ['openapi: openapi must name a 3.x version']],
    ['a path without /', { openapi: '3.0.0', paths: { pets: { get: {} } } }, ['paths.pets: a path starts with /']],
    ['an operationId that is not a string', { openapi: '3.0.0', paths: { '/a': { get: { operationId: 7 } } } }, ['paths./a.get.operationId: Invalid input: expected string, received number']],
    ['an operation that is not an object', { openapi: '3.0.0', paths: { '/a': { get: true, post: {} } } }, ['paths./a.get: Invalid input: expected object, received boolean']],
    ['a duplicate operationId', { openapi: '3.0.0', paths: { '/a': { get: { operationId: 'x' } }, '/b': { post: { operationId: 'x' } } } }, ['paths./b.post: operation "x" is also defined at paths./a.get; operationIds must be unique']],
    ['a path item reference', { openapi: '3.0.0', paths: { '/a': { $ref: '#/components/pathItems/a' } } }, ['paths./a.$ref: path item references are not resolved: inline the path item']],
    ['no operations', { openapi: '3.0.0', paths: { '/a': { parameters: [] } } }, ['paths: the document defines no operations (get, put, post, delete, options, head, patch, trace)']],
    ['an operation name over 200 characters', { openapi: '3.0.0', paths: { '/a': { get: { operationId: 'x'.repeat(201) } } } }, ['paths./a.get.operationId: an operation name is at most 200 characters (give the operation a shorter operationId)']],
  ];
  for (const [name, doc, expected] of cases) it(name, () => expect(errorsOf(catalogFromOpenApi('t', doc))).toEqual(expected));

  it('more than 1000 operations', () => {
    const paths = Object.fromEntries(Array.from({ length: 1001 }, (_, i) => [`/p${i}`, { get: {} }]));
    expect(errorsOf(catalogFromOpenApi('t', { openapi: '3.0.0', paths }))).toEqual(['paths: more than 1000 operations; split the document into several registrations']);
  });
  it('a tool name with spaces', () => {
    expect(errorsOf(catalogFromOpenApi('my tool', OPENAPI))).toEqual(['tool: a tool name has no spaces or control characters']);
  });
});

describe('MCP tools/list: tags by annotations', () => {
  const list = {
    tools: [
      { name: 'search', annotations: { readOnlyHint: true, openWorldHint: true } },
      { name: 'comment', annotations: { readOnlyHint: false, destructiveHint: false, openWorldHint: true } },
      { name: 'drop_table', description: 'no annotations: the MCP default is destructive' },
      { name: 'update', annotations: { destructiveHint: true, idempotentHint: true } },
    ],
  };
  it('with a server, MCP tools are its operations', () => {
    const c = catalogFromMcp(list, { server: 'db' });
    expect(c.ok && c.catalog.entries.map((e) => [e.tool, e.operation, e.risk_tags.join('+')])).toEqual([
      ['db', 'search', 'read+external'],
      ['db', 'comment', 'write+external'],
      ['db', 'drop_table', 'write+destructive'],
      ['db', 'update', 'write+destructive'],
    ]);
  });
  it('without, each MCP tool is a tool (any operation)', () => {
    const c = catalogFromMcp({ jsonrpc: '2.0', id: 1, result: list });
    expect(c.ok && c.catalog.entries.map((e) => [e.tool, e.operation ?? null])).toEqual([['search', null], ['comment', null], ['drop_table', null], ['update', null]]);
  });
  const bad: Array<[string, unknown, string[]]> = [
    ['no tools array', { items: [] }, ['tools: an MCP tools/list result needs a tools array']],
    ['an empty tools array', { tools: [] }, ['tools: the tools array is empty']],
    ['a tool without a name', { tools: [{ description: 'x' }] }, ['tools.0.name: Invalid input: expected string, received undefined']],
    ['a hint that is not a boolean', { tools: [{ name: 'a', annotations: { readOnlyHint: 'yes' } }] }, ['tools.0.annotations.readOnlyHint: Invalid input: expected boolean, received string']],
    ['a duplicate name', { tools: [{ name: 'a' }, { name: 'a' }] }, ['tools.1.name: tool "a" is listed twice']],
    ['one page of several', { tools: [{ name: 'a' }], nextCursor: 'abc' }, ['nextCursor: this is one page of a paginated tools/list: merge every page into one tools array']],
    ['a JSON-RPC error', { jsonrpc: '2.0', id: 1, error: { code: -32601, message: 'nope' } }, ['error: the JSON-RPC response is an error, not a tools/list result']],
    ['a JSON-RPC response without a result', { jsonrpc: '2.0', id: 1 }, ['result: a tools/list result must be an object with a tools array']],
  ];
  for (const [name, doc, expected] of bad) it(`refuses ${name}`, () => expect(errorsOf(catalogFromMcp(doc))).toEqual(expected));
  it('refuses more than 1000 tools', () => {
    expect(errorsOf(catalogFromMcp({ tools: Array.from({ length: 1001 }, (_, i) => ({ name: `t${i}` })) }))).toEqual(['tools: more than 1000 tools; split them into several registrations']);
  });
});

describe('registrations', () => {
  it('a source keeps the derived entries and the digest of the document; the source id defaults to the tool', () => {
    const r = sourceFromRegistration(RegisterCatalogBody.parse({ format: 'openapi', tool: 'billing', document: OPENAPI }));
    expect(r.ok && { id: r.source.source_id, tool: r.source.tool, n: r.source.entries.length, digest: r.source.document_digest }).toMatchObject({ id: 'billing', tool: 'billing', n: 8, digest: expect.stringMatching(/^sha256:/) });
  });
  it('errors carry the document prefix', () => {
    const r = sourceFromRegistration(RegisterCatalogBody.parse({ format: 'mcp', source: 'fs', document: { tools: [{ name: 'a' }, { name: 'a' }] } }));
    expect(errorsOf(r)).toEqual(['document.tools.1.name: tool "a" is listed twice']);
  });
  it('a tool name that cannot be a source id asks for one', () => {
    const r = sourceFromRegistration(RegisterCatalogBody.parse({ format: 'openapi', tool: 'api/v2', document: OPENAPI }));
    expect(errorsOf(r)[0]).toMatch(/^tool: cannot be the source id .*give source$/);
  });
  it('the source id "lookup" is reserved (it names a route)', () => {
    const r = sourceFromRegistration(RegisterCatalogBody.parse({ format: 'mcp', tool: 'lookup', document: { tools: [{ name: 'a' }] } }));
    expect(errorsOf(r)[0]).toMatch(/^tool: cannot be the source id \(lookup is reserved/);
    expect(RegisterCatalogBody.safeParse({ format: 'mcp', source: 'lookup', document: {} }).success).toBe(false);
  });
  it('the body schema needs a tool for OpenAPI and a source or tool always', () => {
    const a = RegisterCatalogBody.safeParse({ format: 'openapi', source: 's', document: OPENAPI });
    expect(a.success || a.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`)).toEqual(['tool: an OpenAPI registration needs the tool name agents call it by']);
    const b = RegisterCatalogBody.safeParse({ format: 'mcp', document: { tools: [] } });
    expect(b.success || b.error.issues.map((i) => i.path.join('.'))).toEqual(['source']);
    expect(RegisterCatalogBody.safeParse({ format: 'mcp', source: 's', document: {}, extra: 1 }).success).toBe(false);
  });
});

describe('catalog versions and hashes', () => {
  const src = (id: string, tool: string): CatalogSource => ({ source_id: id, format: 'mcp', tool: null, document_digest: `sha256:${'0'.repeat(64)}`, entries: [{ tool, risk_tags: ['write', 'destructive'], source: 'mcp' }] });
  it('the hash is over the sources, whatever order they were registered in; removal restores the hash, not the version', () => {
    const ab = applyCatalogChange(applyCatalogChange(EMPTY_CATALOG, { kind: 'registered', source: src('a', 'x') }), { kind: 'registered', source: src('b', 'y') });
    const ba = applyCatalogChange(applyCatalogChange(EMPTY_CATALOG, { kind: 'registered', source: src('b', 'y') }), { kind: 'registered', source: src('a', 'x') });
    expect(ab.hash).toBe(ba.hash);
    expect(ab.version).toBe(2);
    expect(ab.hash).toBe(catalogHash([src('b', 'y'), src('a', 'x')]));
    const back = applyCatalogChange(applyCatalogChange(ab, { kind: 'removed', source_id: 'a' }), { kind: 'removed', source_id: 'b' });
    expect(back).toMatchObject({ version: 4, hash: EMPTY_CATALOG.hash, sources: [] });
  });
  it('re-registering a source replaces it', () => {
    const one = applyCatalogChange(EMPTY_CATALOG, { kind: 'registered', source: src('a', 'x') });
    const two = applyCatalogChange(one, { kind: 'registered', source: src('a', 'z') });
    expect(two.sources.map((s) => s.entries[0]!.tool)).toEqual(['z']);
    expect(catalogRiskTags(catalogOf(two.sources), { action: { tool: 'x' } })).toEqual([]);
  });
});

describe('enrichment on the decision path: facts.tool_catalog', () => {
  const c = catalogFromOpenApi('billing', OPENAPI);
  if (!c.ok) throw new Error(c.error);
  const state = applyCatalogChange(EMPTY_CATALOG, { kind: 'registered', source: { source_id: 'billing', format: 'openapi', tool: 'billing', document_digest: `sha256:${'1'.repeat(64)}`, entries: c.catalog.entries } });
  const s = snap([
    { name: 'no-destroy', match: { risk_tags: ['destructive'] }, decision: 'REQUIRE_APPROVAL', approval: { approvers: ['ops'] } },
    { name: 'billing-ok', match: { tool: 'billing' }, decision: 'ALLOW' },
  ]);
  const plain = req({ action: { tool: 'billing', operation: 'deleteInvoice' }, context: { risk_tags: ['pii'] } });

  it('the fact names the version, the hash and the derived tags', () => {
    expect(ToolCatalogFact.parse(catalogFact(state, plain))).toEqual({ version: 1, hash: state.hash, risk_tags: ['write', 'destructive'] });
    expect(catalogFact(state, req({ action: { tool: 'billing', operation: 'listInvoices' } })).risk_tags).toEqual(['read']);
    expect(catalogFact(state, req({ action: { tool: 'other' } })).risk_tags).toEqual([]);
  });
  it('evaluate() applies the recorded tags: the same decision as evaluating the enriched request', () => {
    const facts = { tool_catalog: catalogFact(state, plain) };
    const viaFacts = evaluate(s, plain, facts, NOW);
    const viaRequest = evaluate(s, enrichRequest(catalogOf(state.sources), plain), {}, NOW);
    expect(viaFacts).toMatchObject({ decision: 'REQUIRE_APPROVAL', matched_rule: 'no-destroy', facts });
    expect({ ...viaRequest, facts }).toEqual(viaFacts);
    expect(evaluate(s, plain, {}, NOW)).toMatchObject({ decision: 'ALLOW', matched_rule: 'billing-ok' });
    expect(plain.context['risk_tags']).toEqual(['pii']); // the request itself is untouched
  });
  it('never removes an agent tag, whatever it said', () => {
    for (const agentTags of [[], ['read'], ['destructive'], ['pii', 'read', 'external'], ['write', 'write']]) {
      for (const operation of ['deleteInvoice', 'listInvoices', 'nope']) {
        const r = req({ action: { tool: 'billing', operation }, context: agentTags.length ? { risk_tags: agentTags } : {} });
        const tags = enrichRequest(catalogOf(state.sources), r).context['risk_tags'];
        for (const t of agentTags) expect(tags).toContain(t);
        for (const t of catalogFact(state, r).risk_tags) expect(tags).toContain(t);
      }
    }
  });
  it('simulate applies the tenant catalog as the decision path does, unless the body gives the fact', () => {
    const body = { request: { agent: { id: 'bot' }, action: { tool: 'billing', operation: 'deleteInvoice' } } };
    expect(simulate({ body, active: s, now: NOW, catalog: state })).toMatchObject({ ok: true, result: { decision: 'REQUIRE_APPROVAL', facts: { tool_catalog: { version: 1, risk_tags: ['write', 'destructive'] } } } });
    expect(simulate({ body, active: s, now: NOW })).toMatchObject({ ok: true, result: { decision: 'ALLOW', facts: {} } });
    const given = { ...body, facts: { tool_catalog: { version: 1, hash: state.hash, risk_tags: [] } } };
    expect(simulate({ body: given, active: s, now: NOW, catalog: state })).toMatchObject({ ok: true, result: { decision: 'ALLOW' } });
  });
  it('a malformed fact fails closed, naming the fact', () => {
    for (const bad of [null, 'x', { risk_tags: 'destructive' }, { risk_tags: ['nuclear'] }, { risk_tags: [1] }]) {
      expect(evaluate(s, plain, { tool_catalog: bad as never }, NOW)).toMatchObject({ decision: 'DENY', matched_rule: null, reason: expect.stringMatching(/tool_catalog.*failing closed/) });
    }
  });
});

describe('catalog fuzz (seeded): arbitrary documents never throw; what is accepted is well-formed; tags only ever added', () => {
  const SEED = 20250109;
  const junk = fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.string({ maxLength: 3 }), { maxLength: 2 }), fc.dictionary(fc.string({ maxLength: 4 }), fc.string({ maxLength: 4 }), { maxKeys: 2 }));
  const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(fc.oneof({ weight: 20, arbitrary: a }, { weight: 1, arbitrary: junk }), { nil: undefined });
  const operation = fc.record({ operationId: maybe(fc.constantFrom('listA', 'deleteA', 'x', '', 'a b')), responses: maybe(junk) }, { requiredKeys: [] });
  const pathItem = fc.dictionary(fc.constantFrom('get', 'post', 'put', 'patch', 'delete', 'head', 'options', 'trace', 'parameters', '$ref', 'summary', 'GET'), fc.oneof({ weight: 5, arbitrary: operation }, { weight: 1, arbitrary: junk }), { maxKeys: 4 });
  const openapi = fc.record({
    openapi: maybe(fc.constantFrom('3.0.3', '3.1.0', '2.0', 'x')),
    swagger: maybe(fc.constantFrom('2.0', '1.2')),
    paths: maybe(fc.dictionary(fc.constantFrom('/a', '/b/{id}', 'c', '/'), fc.oneof({ weight: 5, arbitrary: pathItem }, { weight: 1, arbitrary: junk }), { maxKeys: 3 })),
  }, { requiredKeys: [] });
  const mcpTool = fc.record({
    name: maybe(fc.constantFrom('read_file', 'rm', 'send', 'a b', '')),
    annotations: maybe(fc.record({ readOnlyHint: maybe(fc.boolean()), destructiveHint: maybe(fc.boolean()), openWorldHint: maybe(fc.boolean()) }, { requiredKeys: [] })),
  }, { requiredKeys: [] });
  const mcp = fc.oneof(
    fc.record({ tools: maybe(fc.array(fc.oneof({ weight: 5, arbitrary: mcpTool }, { weight: 1, arbitrary: junk }), { maxLength: 4 })), nextCursor: maybe(fc.constantFrom('', 'p2')) }, { requiredKeys: [] }),
    fc.record({ jsonrpc: fc.constant('2.0'), id: fc.integer(), result: maybe(fc.record({ tools: fc.array(mcpTool, { maxLength: 3 }) })) }, { requiredKeys: ['jsonrpc', 'id'] }),
    junk,
  );
  const check = (r: ReturnType<typeof catalogFromMcp>) => {
    if (r.ok) {
      for (const e of r.catalog.entries) {
        expect(CatalogEntry.safeParse(e).success).toBe(true);
        if (e.risk_tags.includes('destructive')) expect(e.risk_tags).toContain('write');
      }
    } else {
      expect(r.errors.length).toBeGreaterThan(0);
      for (const e of r.errors) expect(e.path.length > 0 && e.message.length > 0).toBe(true);
    }
    return r;
  };
  it('OpenAPI', () => {
    fc.assert(fc.property(fc.oneof(openapi, junk), (doc) => void check(catalogFromOpenApi('tool', doc))), { seed: SEED, numRuns: 2000 });
  });
  it('MCP, and enrichment from whatever was accepted keeps every agent tag', () => {
    fc.assert(fc.property(mcp, fc.option(fc.constantFrom('srv'), { nil: undefined }), fc.array(fc.constantFrom('read', 'pii', 'destructive', 'x'), { maxLength: 3 }), fc.constantFrom('rm', 'read_file', 'srv'), (doc, server, agentTags, tool) => {
      const r = check(catalogFromMcp(doc, server === undefined ? {} : { server }));
      if (!r.ok) return;
      const request = req({ action: { tool, operation: 'rm' }, context: { risk_tags: agentTags } });
      const tags = enrichRequest(r.catalog, request).context['risk_tags'] as string[];
      for (const t of agentTags) expect(tags).toContain(t);
      for (const t of catalogRiskTags(r.catalog, request)) expect(tags).toContain(t);
    }), { seed: SEED, numRuns: 2000 });
  });
});
