-- Up Migration

-- The monitor: one row per decision run, projected from the run's events, for `GET /v1/decisions` to filter
-- and page without folding the log on every request (services/decisions/list-decisions.ts).
--
-- How it is kept: a statement-level AFTER INSERT trigger on `events` applies each append's rows to this table
-- in the append's own transaction. So the projection commits with the events or not at all (no lag, no
-- checkpoint to lose, an agent sees its decision listed as soon as it is recorded), and every write path to
-- the log (countersign_append, appendInTransaction, a test's raw INSERT) is covered without being changed.
-- countersign_monitor_apply is the one projection function: the trigger calls it with an append's rows, and
-- countersign_monitor_rebuild calls it with the whole log in position order, in batches. Each column is "the
-- value from the last event of the kinds that set it", which does not depend on where batches split, so a
-- rebuild gives the same rows as the live path. The fold mirrors services/decisions/run-view.ts `evolve` for
-- the fields it keeps:
--   DecisionRequested  creates the row (status 'requested')
--   PolicyEvaluated    decision, reason, matched_rule, matched_rules, snapshot_hash; status 'pending_approval'
--                      when the decision is REQUIRE_APPROVAL (otherwise unchanged)
--   DecisionFinalized  decision, reason, matched_rule, via; status 'final'
-- policy_id and policy_version are the deciding rule's (the first matched rule with the deciding name, as
-- services/decisions/reason-code.ts reads it), generated from the stored columns.

CREATE FUNCTION countersign_deciding_rule(p_matched jsonb, p_rule text) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT m FROM jsonb_array_elements(CASE WHEN jsonb_typeof(p_matched) = 'array' THEN p_matched ELSE '[]'::jsonb END) WITH ORDINALITY AS t(m, i)
   WHERE p_rule IS NOT NULL AND m ->> 'rule' = p_rule
   ORDER BY i LIMIT 1
$$;

CREATE TABLE decision_monitor (
  stream_id      text        PRIMARY KEY,
  tenant_id      text        NOT NULL,
  decision_id    text        NOT NULL,
  -- Position of the run's DecisionRequested: unique, the tie-breaker of the list's order.
  seq            bigint      NOT NULL UNIQUE,
  run_id         text        NOT NULL,
  requested_at   timestamptz NOT NULL,
  agent_id       text        NOT NULL,
  requested_by   text        NOT NULL,
  tool           text        NOT NULL,
  operation      text,
  input_digest   text        NOT NULL,
  input          jsonb       NOT NULL,
  status         text        NOT NULL CHECK (status IN ('requested', 'pending_approval', 'final')),
  decision       text,
  reason         text        NOT NULL DEFAULT '',
  matched_rule   text,
  matched_rules  jsonb       NOT NULL DEFAULT '[]'::jsonb,
  snapshot_hash  text,
  finalized_via  text,
  decided_at     timestamptz,
  policy_id      text GENERATED ALWAYS AS (countersign_deciding_rule(matched_rules, matched_rule) ->> 'policy_id') STORED,
  policy_version integer GENERATED ALWAYS AS ((countersign_deciding_rule(matched_rules, matched_rule) ->> 'version')::integer) STORED,
  last_position  bigint      NOT NULL
);
CREATE UNIQUE INDEX decision_monitor_tenant_decision ON decision_monitor (tenant_id, decision_id);
-- Every list is one tenant's, newest first by (requested_at, seq); one index per filter that narrows a lot,
-- each ending in the order so that a page is an index range read, never a sort.
CREATE INDEX decision_monitor_time ON decision_monitor (tenant_id, requested_at DESC, seq DESC);
CREATE INDEX decision_monitor_policy ON decision_monitor (tenant_id, policy_id, requested_at DESC, seq DESC);
CREATE INDEX decision_monitor_policy_decision ON decision_monitor (tenant_id, policy_id, decision, requested_at DESC, seq DESC);
CREATE INDEX decision_monitor_decision ON decision_monitor (tenant_id, decision, requested_at DESC, seq DESC);
CREATE INDEX decision_monitor_agent ON decision_monitor (tenant_id, agent_id, requested_at DESC, seq DESC);
CREATE INDEX decision_monitor_tool ON decision_monitor (tenant_id, tool, requested_at DESC, seq DESC);
CREATE INDEX decision_monitor_rule ON decision_monitor (tenant_id, matched_rule, requested_at DESC, seq DESC);
CREATE INDEX decision_monitor_requested_by ON decision_monitor (tenant_id, requested_by, requested_at DESC, seq DESC);
CREATE INDEX decision_monitor_open ON decision_monitor (tenant_id, requested_at DESC, seq DESC) WHERE status <> 'final';

ALTER TABLE decision_monitor ENABLE ROW LEVEL SECURITY;
ALTER TABLE decision_monitor FORCE ROW LEVEL SECURITY;
CREATE POLICY decision_monitor_tenant ON decision_monitor
  USING (countersign_system() OR tenant_id = countersign_tenant())
  WITH CHECK (countersign_system() OR tenant_id = countersign_tenant());

-- Applies a batch of events (in position order) to the projection. Events of other kinds and streams are
-- ignored; an event of a run whose DecisionRequested was never projected changes nothing.
-- One pass: the batch grouped by stream, each field picked by an ordered aggregate ("the last event of the kinds
-- that set it"), so the cost grows with the batch as a sort, never as joins between unsized sets.
CREATE FUNCTION countersign_monitor_apply(p_rows events[]) RETURNS void
LANGUAGE sql SECURITY INVOKER AS $$
  WITH
  b AS (
    SELECT r.* FROM unnest(p_rows) AS r
     WHERE r.type IN ('DecisionRequested', 'PolicyEvaluated', 'DecisionFinalized') AND left(r.stream_id, 4) = 'run/'),
  a AS (
    SELECT b.stream_id,
           max(b.position) AS last_position,
           (array_agg(b.position ORDER BY b.position) FILTER (WHERE b.type = 'DecisionRequested'))[1] AS req_position,
           (array_agg(b.tenant_id ORDER BY b.position) FILTER (WHERE b.type = 'DecisionRequested'))[1] AS req_tenant,
           (array_agg(b.data ORDER BY b.position) FILTER (WHERE b.type = 'DecisionRequested'))[1] AS req,
           (array_agg(b.metadata ORDER BY b.position) FILTER (WHERE b.type = 'DecisionRequested'))[1] AS req_metadata,
           (array_agg(b.recorded_at ORDER BY b.position) FILTER (WHERE b.type = 'DecisionRequested'))[1] AS req_at,
           -- The last PolicyEvaluated or DecisionFinalized: decision, reason, matched_rule.
           bool_or(b.type <> 'DecisionRequested') AS has_dec,
           (array_agg(CASE b.type WHEN 'PolicyEvaluated' THEN b.data -> 'evaluation' ELSE b.data END ORDER BY b.position DESC)
              FILTER (WHERE b.type <> 'DecisionRequested'))[1] AS dec,
           -- The last PolicyEvaluated: matched_rules, snapshot_hash.
           bool_or(b.type = 'PolicyEvaluated') AS has_ev,
           (array_agg(b.data -> 'evaluation' ORDER BY b.position DESC) FILTER (WHERE b.type = 'PolicyEvaluated'))[1] AS ev,
           -- The last DecisionFinalized: via, decided_at.
           bool_or(b.type = 'DecisionFinalized') AS has_fin,
           (array_agg(b.data ->> 'via' ORDER BY b.position DESC) FILTER (WHERE b.type = 'DecisionFinalized'))[1] AS via,
           (array_agg(b.recorded_at ORDER BY b.position DESC) FILTER (WHERE b.type = 'DecisionFinalized'))[1] AS fin_at,
           -- The last event that sets the status.
           (array_agg(CASE b.type WHEN 'DecisionFinalized' THEN 'final' ELSE 'pending_approval' END ORDER BY b.position DESC)
              FILTER (WHERE b.type = 'DecisionFinalized' OR (b.type = 'PolicyEvaluated' AND b.data -> 'evaluation' ->> 'decision' = 'REQUIRE_APPROVAL')))[1] AS status
      FROM b GROUP BY b.stream_id),
  created AS (
    INSERT INTO decision_monitor AS m (stream_id, tenant_id, decision_id, seq, run_id, requested_at, agent_id, requested_by, tool, operation,
                                       input_digest, input, status, decision, reason, matched_rule, matched_rules, snapshot_hash,
                                       finalized_via, decided_at, last_position)
    SELECT a.stream_id, a.req_tenant, a.req ->> 'decision_id', a.req_position,
           coalesce(a.req_metadata ->> 'workflow_id', 'decision/' || a.req_tenant || '/' || (a.req ->> 'decision_id')),
           a.req_at, a.req -> 'request' -> 'agent' ->> 'id', a.req ->> 'requested_by',
           a.req -> 'request' -> 'action' ->> 'tool', a.req -> 'request' -> 'action' ->> 'operation',
           a.req ->> 'request_digest', a.req -> 'request',
           coalesce(a.status, 'requested'), a.dec ->> 'decision', coalesce(a.dec ->> 'reason', ''), a.dec ->> 'matched_rule',
           coalesce(a.ev -> 'matched_rules', '[]'::jsonb), a.ev ->> 'snapshot_hash', a.via, a.fin_at, a.last_position
      FROM a
     WHERE a.req_position IS NOT NULL
    -- A run projected already (a batch applied twice) keeps its row; the UPDATE below brings it forward.
    ON CONFLICT (stream_id) DO NOTHING
    RETURNING m.stream_id)
  -- Rows the INSERT above made are not visible to this UPDATE (one snapshot): it changes rows that existed
  -- before this batch only, and only with events newer than the last it applied.
  UPDATE decision_monitor m SET
    status        = coalesce(a.status, m.status),
    decision      = CASE WHEN a.has_dec THEN a.dec ->> 'decision' ELSE m.decision END,
    reason        = CASE WHEN a.has_dec THEN coalesce(a.dec ->> 'reason', '') ELSE m.reason END,
    matched_rule  = CASE WHEN a.has_dec THEN a.dec ->> 'matched_rule' ELSE m.matched_rule END,
    matched_rules = CASE WHEN a.has_ev THEN coalesce(a.ev -> 'matched_rules', '[]'::jsonb) ELSE m.matched_rules END,
    snapshot_hash = CASE WHEN a.has_ev THEN a.ev ->> 'snapshot_hash' ELSE m.snapshot_hash END,
    finalized_via = CASE WHEN a.has_fin THEN a.via ELSE m.finalized_via END,
    decided_at    = CASE WHEN a.has_fin THEN a.fin_at ELSE m.decided_at END,
    last_position = a.last_position
    FROM a
   WHERE m.stream_id = a.stream_id
     AND m.last_position < a.last_position
$$;

CREATE FUNCTION countersign_monitor_on_append() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM appended a WHERE a.type IN ('DecisionRequested', 'PolicyEvaluated', 'DecisionFinalized')) THEN
    PERFORM countersign_monitor_apply(ARRAY(SELECT a::events FROM appended a ORDER BY a.position));
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER events_monitor AFTER INSERT ON events REFERENCING NEW TABLE AS appended
  FOR EACH STATEMENT EXECUTE FUNCTION countersign_monitor_on_append();

-- Rebuilds the projection from the log: every row dropped and projected again from the events, in position
-- order, with countersign_monitor_apply (the live path's function), in one transaction. Readers keep seeing
-- the old rows until it commits. The EXCLUSIVE lock is taken before the log is read: an append whose trigger
-- already wrote here holds a conflicting lock until it commits (so its events are read), and one that has not
-- waits and applies its own events after the rebuild. Returns the number of events read and rows made.
-- SECURITY DEFINER: the application role may not delete projection rows itself.
CREATE FUNCTION countersign_monitor_rebuild(p_batch integer DEFAULT 20000) RETURNS TABLE (events_read bigint, rows_projected bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_after bigint := 0;
  v_last bigint;
  v_read bigint := 0;
  v_batch events[];
BEGIN
  PERFORM set_config('countersign.system', 'monitor rebuild', true);
  LOCK TABLE decision_monitor IN EXCLUSIVE MODE;
  DELETE FROM decision_monitor;
  LOOP
    v_batch := ARRAY(SELECT e FROM events e
                      WHERE e.position > v_after AND e.type IN ('DecisionRequested', 'PolicyEvaluated', 'DecisionFinalized')
                      ORDER BY e.position LIMIT p_batch);
    EXIT WHEN cardinality(v_batch) = 0;
    v_last := (v_batch[cardinality(v_batch)]).position;
    PERFORM countersign_monitor_apply(v_batch);
    v_read := v_read + cardinality(v_batch);
    v_after := v_last;
  END LOOP;
  RETURN QUERY SELECT v_read, (SELECT count(*) FROM decision_monitor);
END $$;

-- One page of a tenant's monitor, in one statement (one round trip: the scope, the query and the commit of
-- withTenant's transaction are three). Like countersign_append, it sets the transaction-local tenant scope
-- itself, so row-level security applies as under withTenant. Each filter present in p_filters adds a fixed
-- condition that reads its value from the jsonb parameter, never from the statement's text, and the page is
-- planned with the values known (EXECUTE), so the index that fits the filters is used. Values are validated
-- by the API before they reach here (services/decisions/list-decisions.ts).
CREATE FUNCTION countersign_monitor_page(p_tenant text, p_filters jsonb, p_after_at timestamptz, p_after_seq bigint, p_limit integer, p_with_input boolean)
RETURNS TABLE (decision_id text, seq bigint, cursor_at text, run_id text, requested_at timestamptz, agent_id text, requested_by text, tool text,
               operation text, input_digest text, input jsonb, status text, decision text, reason text, matched_rule text, matched_rules jsonb,
               snapshot_hash text, finalized_via text, decided_at timestamptz, policy_id text, policy_version integer)
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
  v_where text := 'm.tenant_id = $2';
  v_key text;
BEGIN
  IF p_tenant IS NULL OR p_tenant = '' THEN
    RAISE EXCEPTION 'countersign_monitor_page: no tenant' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM set_config('countersign.tenant_id', p_tenant, true);
  IF p_filters ->> 'status' = 'final' THEN
    v_where := v_where || ' AND m.status = ''final''';
  ELSIF p_filters ->> 'status' = 'pending_approval' THEN
    v_where := v_where || ' AND m.status <> ''final''';
  END IF;
  FOREACH v_key IN ARRAY ARRAY['agent_id', 'decision', 'policy_id', 'matched_rule', 'tool', 'operation', 'requested_by'] LOOP
    IF p_filters ? v_key THEN
      v_where := v_where || format(' AND m.%I = ($1 ->> %L)', v_key, v_key);
    END IF;
  END LOOP;
  IF p_filters ? 'policy_version' THEN
    v_where := v_where || ' AND m.policy_version = ($1 ->> ''policy_version'')::integer';
  END IF;
  IF p_filters ? 'since' THEN
    v_where := v_where || ' AND m.requested_at >= ($1 ->> ''since'')::timestamptz';
  END IF;
  IF p_filters ? 'until' THEN
    v_where := v_where || ' AND m.requested_at < ($1 ->> ''until'')::timestamptz';
  END IF;
  IF p_after_at IS NOT NULL THEN
    v_where := v_where || ' AND (m.requested_at, m.seq) < ($3, $4)';
  END IF;
  RETURN QUERY EXECUTE format(
    'SELECT m.decision_id, m.seq, to_char(m.requested_at AT TIME ZONE ''UTC'', ''YYYY-MM-DD"T"HH24:MI:SS.US"Z"''), m.run_id, m.requested_at,
            m.agent_id, m.requested_by, m.tool, m.operation, m.input_digest, %s, m.status, m.decision, m.reason, m.matched_rule,
            m.matched_rules, m.snapshot_hash, m.finalized_via, m.decided_at, m.policy_id, m.policy_version
       FROM decision_monitor m WHERE %s ORDER BY m.requested_at DESC, m.seq DESC LIMIT $5',
    CASE WHEN p_with_input THEN 'm.input' ELSE 'NULL::jsonb' END, v_where)
    USING p_filters, p_tenant, p_after_at, p_after_seq, p_limit;
END $$;

-- Runs already in the log are projected now.
SELECT * FROM countersign_monitor_rebuild();

-- Down Migration
DROP FUNCTION countersign_monitor_page(text, jsonb, timestamptz, bigint, integer, boolean);
DROP FUNCTION countersign_monitor_rebuild(integer);
DROP TRIGGER events_monitor ON events;
DROP FUNCTION countersign_monitor_on_append();
DROP FUNCTION countersign_monitor_apply(events[]);
DROP TABLE decision_monitor;
DROP FUNCTION countersign_deciding_rule(jsonb, text);
