-- Up Migration

-- The monitor's projection function (migration 0024) in PL/pgSQL instead of SQL, with the same statement.
-- A SQL function called from the append's trigger is planned again on every call (about 0.6 ms for this
-- statement, on every append of a run's first and last events); a PL/pgSQL function keeps its plan for the
-- session, and the pool's sessions live long. What the statement does is unchanged, so a rebuild and the
-- live path still give the same rows.
CREATE OR REPLACE FUNCTION countersign_monitor_apply(p_rows events[]) RETURNS void
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
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
     AND m.last_position < a.last_position;
END $$;

-- Down Migration
-- Nothing to undo: the PL/pgSQL function runs the same statement as migration 0024's SQL one and leaves the same
-- rows; it is only planned once per session instead of on every call. Rolling back to 0024 drops it with the rest.
