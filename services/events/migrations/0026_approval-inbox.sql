-- Up Migration

-- The approvers' inbox: one row per OPEN round (decision rounds, override rounds, four-eyes activation reviews),
-- projected from the log, for `GET /v1/approvals` to page without folding every open run of the tenant, and for
-- `GET /v1/approvals/stream` to hear of rounds opening and closing (NOTIFY countersign_inbox).
--
-- How it is kept: like decision_monitor (migration 0024), a statement-level AFTER INSERT trigger on `events`
-- applies each append's rows in the append's own transaction, so the inbox commits with the events or not at
-- all, and every write path to the log is covered. countersign_inbox_apply is the one projection function: the
-- trigger calls it with an append's rows (and notifies), countersign_inbox_rebuild with the whole log in
-- position order (and does not). Each event is applied in position order, so a batch that closes a round and
-- opens the next (a DENY, then an override round) leaves the same rows as two appends would.
--
-- The fold mirrors services/decisions/run-view.ts `evolve` and services/lifecycle/activation-review.ts
-- `evolveReview` for what decides whether a round is open and who may answer it:
--   ApprovalRequested          opens round n of a run: its groups, deadline, quorum; the round's requester and
--                              the run's requester may never answer it
--   ApprovalGranted            the approver (and the principal it answered for, under a delegation) has
--                              answered; a round without requirements closes at its quorum ('approved')
--   ApprovalRejected           closes ('rejected')
--   ApprovalEscalated          the round's groups and deadline are the new level's (groups left out are told
--                              'closed' with reason 'escalated', everyone of the new groups 'open')
--   ApprovalExpired            closes a round without requirements ('expired'); in a round of requirements only
--                              a requirement expired, and the run's DecisionFinalized closes the round if it ends
--   DecisionFinalized          closes every round of the run still open (reason from `via`)
--   OverrideGranted / Denied   closes the override round ('approved' / 'rejected')
--   PolicyActivationRequested  opens a review: admins of the tenant, except its requester and authors
--   PolicyActivationApproved / Rejected / Expired   closes it
-- A round of requirements whose last approval completed it stays here until the DecisionFinalized the workflow
-- appends right after; the API checks each listed round against the run's own fold, so it is never shown.
-- Delegation: a delegate must be in the round's group itself (services/decisions/delegation-rules.ts), so it
-- changes no audience; an answer given for someone removes the round from both people's inboxes (`answered`).

CREATE TABLE approval_inbox (
  item_key          text        PRIMARY KEY,   -- <run stream>/<round>, or <policy stream>/review/<review id>
  tenant_id         text        NOT NULL,
  kind              text        NOT NULL CHECK (kind IN ('decision', 'override', 'activation_review')),
  stream_id         text        NOT NULL,
  decision_id       text,
  round             integer,
  review_id         text,
  groups            text[]      NOT NULL,      -- rounds: who may answer now; reviews: empty (admins)
  deadline          timestamptz NOT NULL,
  quorum            integer     NOT NULL,
  approvals         integer     NOT NULL DEFAULT 0,
  with_requirements boolean     NOT NULL DEFAULT false,
  excluded          text[]      NOT NULL,      -- who may never answer it (requesters, a review's authors)
  answered          text[]      NOT NULL DEFAULT '{}',  -- who answered it, or had it answered for them
  seq               bigint      NOT NULL,      -- position of the request: the order's tie-breaker
  opened_at         timestamptz NOT NULL
);
CREATE INDEX approval_inbox_stream ON approval_inbox (stream_id);

-- Who may answer each open item, one row per audience, with the item's order: 'group/<name>' for a round's
-- approver groups, 'role/admin' for reviews. A caller's page is one index range per audience it belongs to,
-- already in (deadline, seq) order, so its cost does not grow with the tenant's backlog.
CREATE TABLE approval_inbox_audience (
  item_key  text        NOT NULL REFERENCES approval_inbox (item_key) ON DELETE CASCADE,
  tenant_id text        NOT NULL,
  audience  text        NOT NULL,
  deadline  timestamptz NOT NULL,
  seq       bigint      NOT NULL,
  PRIMARY KEY (item_key, audience)
);
CREATE INDEX approval_inbox_audience_page ON approval_inbox_audience (tenant_id, audience, deadline, seq);

ALTER TABLE approval_inbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE approval_inbox FORCE ROW LEVEL SECURITY;
CREATE POLICY approval_inbox_tenant ON approval_inbox
  USING (countersign_system() OR tenant_id = countersign_tenant())
  WITH CHECK (countersign_system() OR tenant_id = countersign_tenant());
ALTER TABLE approval_inbox_audience ENABLE ROW LEVEL SECURITY;
ALTER TABLE approval_inbox_audience FORCE ROW LEVEL SECURITY;
CREATE POLICY approval_inbox_audience_tenant ON approval_inbox_audience
  USING (countersign_system() OR tenant_id = countersign_tenant())
  WITH CHECK (countersign_system() OR tenant_id = countersign_tenant());

-- Tells the API's stream that an item opened or closed, at commit (NOTIFY is transactional). The payload names
-- the tenant and who may hear of it; the API sends each connection only what its principal may answer. A payload
-- over NOTIFY's limit (8000 bytes: hundreds of groups) goes without its audience, marked `wide`: the API then
-- reads the audience of an open item from this table, and tells a close to the tenant's connections of the
-- item's role (an opaque id closing; nothing of its content).
CREATE FUNCTION countersign_inbox_notify(p_item approval_inbox, p_status text, p_reason text, p_groups text[], p_only text[]) RETURNS void
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
  v_payload jsonb;
BEGIN
  v_payload := jsonb_build_object(
    'tenant', p_item.tenant_id, 'id', coalesce(p_item.decision_id, p_item.review_id), 'kind', p_item.kind,
    'status', p_status, 'reason', p_reason, 'key', p_item.item_key,
    'groups', to_jsonb(p_groups), 'excluded', to_jsonb(p_item.excluded), 'answered', to_jsonb(p_item.answered), 'only', to_jsonb(p_only));
  IF octet_length(v_payload::text) > 7900 THEN
    v_payload := jsonb_build_object(
      'tenant', p_item.tenant_id, 'id', coalesce(p_item.decision_id, p_item.review_id), 'kind', p_item.kind,
      'status', p_status, 'reason', p_reason, 'key', p_item.item_key, 'wide', true);
  END IF;
  PERFORM pg_notify('countersign_inbox', v_payload::text);
END $$;

-- Closes an item: its row (and audience rows) go, and its audience is told.
CREATE FUNCTION countersign_inbox_close(p_key text, p_reason text, p_notify boolean) RETURNS void
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
  v_item approval_inbox;
BEGIN
  DELETE FROM approval_inbox WHERE item_key = p_key RETURNING * INTO v_item;
  IF FOUND AND p_notify THEN
    PERFORM countersign_inbox_notify(v_item, 'closed', p_reason, v_item.groups, NULL);
  END IF;
END $$;

-- Applies events (in position order) to the inbox. Events of other kinds are ignored; an event of a round or
-- review that is not open here (closed already, or never projected) changes nothing.
CREATE FUNCTION countersign_inbox_apply(p_rows events[], p_notify boolean) RETURNS void
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
  e events;
  v_key text;
  v_item approval_inbox;
  v_groups text[];
  v_excluded text[];
  v_only text[];
  v_reason text;
BEGIN
  FOREACH e IN ARRAY coalesce(p_rows, ARRAY[]::events[]) LOOP
    IF left(e.stream_id, 4) = 'run/' THEN
      v_key := e.stream_id || '/' || (e.data ->> 'round');
      CASE e.type
      WHEN 'ApprovalRequested' THEN
        v_groups := ARRAY(SELECT jsonb_array_elements_text(e.data -> 'groups'));
        v_excluded := ARRAY(SELECT DISTINCT x FROM unnest(ARRAY[
                        e.data ->> 'requested_by',
                        (SELECT r.data ->> 'requested_by' FROM events r WHERE r.stream_id = e.stream_id AND r.type = 'DecisionRequested'
                          ORDER BY r.stream_version LIMIT 1)]) AS x WHERE x IS NOT NULL);
        INSERT INTO approval_inbox AS i (item_key, tenant_id, kind, stream_id, decision_id, round, groups, deadline, quorum,
                                         with_requirements, excluded, seq, opened_at)
        VALUES (v_key, e.tenant_id, CASE e.data ->> 'kind' WHEN 'override' THEN 'override' ELSE 'decision' END, e.stream_id,
                substr(e.stream_id, 5), (e.data ->> 'round')::integer, v_groups, (e.data ->> 'deadline')::timestamptz,
                (e.data ->> 'quorum')::integer, e.data ? 'requirements', v_excluded, e.position, e.recorded_at)
        ON CONFLICT (item_key) DO NOTHING
        RETURNING * INTO v_item;
        IF FOUND THEN
          INSERT INTO approval_inbox_audience (item_key, tenant_id, audience, deadline, seq)
          SELECT v_key, e.tenant_id, 'group/' || g, v_item.deadline, e.position FROM unnest(v_groups) AS g
          ON CONFLICT DO NOTHING;
          IF p_notify THEN PERFORM countersign_inbox_notify(v_item, 'open', 'requested', v_groups, NULL); END IF;
        END IF;
      WHEN 'ApprovalGranted' THEN
        v_only := ARRAY(SELECT x FROM unnest(ARRAY[e.data ->> 'approver_id', e.data ->> 'on_behalf_of']) AS x WHERE x IS NOT NULL);
        UPDATE approval_inbox SET approvals = approvals + 1, answered = answered || v_only
         WHERE item_key = v_key RETURNING * INTO v_item;
        IF FOUND THEN
          IF NOT v_item.with_requirements AND v_item.approvals >= v_item.quorum THEN
            PERFORM countersign_inbox_close(v_key, 'approved', p_notify);
          ELSIF p_notify THEN
            -- Still open for others: it leaves only the inboxes of who answered (and whom it was answered for),
            -- and the others hear that it changed (one more approval), so their cards show who answered so far.
            PERFORM countersign_inbox_notify(v_item, 'closed', 'answered', NULL, v_only);
            PERFORM countersign_inbox_notify(v_item, 'open', 'answered', v_item.groups, NULL);
          END IF;
        END IF;
      WHEN 'ApprovalRejected' THEN
        PERFORM countersign_inbox_close(v_key, 'rejected', p_notify);
      WHEN 'ApprovalEscalated' THEN
        v_groups := ARRAY(SELECT jsonb_array_elements_text(e.data -> 'groups'));
        SELECT * INTO v_item FROM approval_inbox WHERE item_key = v_key;
        IF FOUND THEN
          v_excluded := ARRAY(SELECT g FROM unnest(v_item.groups) AS g WHERE g <> ALL (v_groups)); -- groups that lose it
          UPDATE approval_inbox SET groups = v_groups, deadline = (e.data ->> 'deadline')::timestamptz
           WHERE item_key = v_key RETURNING * INTO v_item;
          DELETE FROM approval_inbox_audience a WHERE a.item_key = v_key AND substr(a.audience, 7) <> ALL (v_groups);
          UPDATE approval_inbox_audience SET deadline = v_item.deadline WHERE item_key = v_key;
          INSERT INTO approval_inbox_audience (item_key, tenant_id, audience, deadline, seq)
          SELECT v_key, e.tenant_id, 'group/' || g, v_item.deadline, v_item.seq FROM unnest(v_groups) AS g
          ON CONFLICT DO NOTHING;
          IF p_notify THEN
            IF cardinality(v_excluded) > 0 THEN PERFORM countersign_inbox_notify(v_item, 'closed', 'escalated', v_excluded, NULL); END IF;
            PERFORM countersign_inbox_notify(v_item, 'open', 'escalated', v_groups, NULL);
          END IF;
        END IF;
      WHEN 'ApprovalExpired' THEN
        SELECT * INTO v_item FROM approval_inbox WHERE item_key = v_key;
        IF FOUND AND NOT (v_item.with_requirements AND e.data ? 'requirements') THEN
          PERFORM countersign_inbox_close(v_key, 'expired', p_notify);
        END IF;
      WHEN 'DecisionFinalized' THEN
        v_reason := CASE e.data ->> 'via' WHEN 'approval' THEN 'approved' WHEN 'override' THEN 'approved' WHEN 'rejection' THEN 'rejected'
                      WHEN 'override_denied' THEN 'rejected' WHEN 'expiry' THEN 'expired' ELSE 'finalized' END;
        FOR v_key IN SELECT i.item_key FROM approval_inbox i WHERE i.stream_id = e.stream_id AND i.seq < e.position LOOP
          PERFORM countersign_inbox_close(v_key, v_reason, p_notify);
        END LOOP;
      WHEN 'OverrideGranted' THEN
        PERFORM countersign_inbox_close(v_key, 'approved', p_notify);
      WHEN 'OverrideDenied' THEN
        PERFORM countersign_inbox_close(v_key, 'rejected', p_notify);
      ELSE
        NULL;
      END CASE;
    ELSIF e.type LIKE 'PolicyActivation%' AND e.data ? 'review_id' THEN
      v_key := e.stream_id || '/review/' || (e.data ->> 'review_id');
      CASE e.type
      WHEN 'PolicyActivationRequested' THEN
        v_excluded := ARRAY(SELECT DISTINCT x FROM unnest(ARRAY[e.data ->> 'requested_by'] || ARRAY(SELECT jsonb_array_elements_text(coalesce(e.data -> 'authors', '[]'::jsonb)))) AS x
                             WHERE x IS NOT NULL);
        INSERT INTO approval_inbox AS i (item_key, tenant_id, kind, stream_id, review_id, groups, deadline, quorum, excluded, seq, opened_at)
        VALUES (v_key, e.tenant_id, 'activation_review', e.stream_id, e.data ->> 'review_id', '{}', (e.data ->> 'deadline')::timestamptz, 1,
                v_excluded, e.position, e.recorded_at)
        ON CONFLICT (item_key) DO NOTHING
        RETURNING * INTO v_item;
        IF FOUND THEN
          INSERT INTO approval_inbox_audience (item_key, tenant_id, audience, deadline, seq)
          VALUES (v_key, e.tenant_id, 'role/admin', v_item.deadline, e.position) ON CONFLICT DO NOTHING;
          IF p_notify THEN PERFORM countersign_inbox_notify(v_item, 'open', 'requested', NULL, NULL); END IF;
        END IF;
      WHEN 'PolicyActivationApproved' THEN
        PERFORM countersign_inbox_close(v_key, 'approved', p_notify);
      WHEN 'PolicyActivationRejected' THEN
        PERFORM countersign_inbox_close(v_key, 'rejected', p_notify);
      WHEN 'PolicyActivationExpired' THEN
        PERFORM countersign_inbox_close(v_key, 'expired', p_notify);
      ELSE
        NULL;
      END CASE;
    END IF;
  END LOOP;
END $$;

CREATE FUNCTION countersign_inbox_on_append() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
  v_rows events[];
BEGIN
  v_rows := ARRAY(SELECT a::events FROM appended a
                   WHERE a.type IN ('ApprovalRequested', 'ApprovalGranted', 'ApprovalRejected', 'ApprovalEscalated', 'ApprovalExpired',
                                    'DecisionFinalized', 'OverrideGranted', 'OverrideDenied', 'PolicyActivationRequested',
                                    'PolicyActivationApproved', 'PolicyActivationRejected', 'PolicyActivationExpired')
                   ORDER BY a.position);
  IF cardinality(v_rows) > 0 THEN
    PERFORM countersign_inbox_apply(v_rows, true);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER events_inbox AFTER INSERT ON events REFERENCING NEW TABLE AS appended
  FOR EACH STATEMENT EXECUTE FUNCTION countersign_inbox_on_append();

-- Rebuilds the inbox from the log (every row dropped, the log applied again in position order with the live
-- path's function, no notifications), in one transaction; readers see the old rows until it commits. Locked
-- before the log is read, as countersign_monitor_rebuild is. SECURITY DEFINER: it reads every tenant's events.
CREATE FUNCTION countersign_inbox_rebuild(p_batch integer DEFAULT 20000) RETURNS TABLE (events_read bigint, rows_projected bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_after bigint := 0;
  v_read bigint := 0;
  v_batch events[];
BEGIN
  PERFORM set_config('countersign.system', 'inbox rebuild', true);
  LOCK TABLE approval_inbox, approval_inbox_audience IN EXCLUSIVE MODE;
  DELETE FROM approval_inbox;
  LOOP
    v_batch := ARRAY(SELECT e FROM events e
                      WHERE e.position > v_after
                        AND e.type IN ('ApprovalRequested', 'ApprovalGranted', 'ApprovalRejected', 'ApprovalEscalated', 'ApprovalExpired',
                                       'DecisionFinalized', 'OverrideGranted', 'OverrideDenied', 'PolicyActivationRequested',
                                       'PolicyActivationApproved', 'PolicyActivationRejected', 'PolicyActivationExpired')
                      ORDER BY e.position LIMIT p_batch);
    EXIT WHEN cardinality(v_batch) = 0;
    PERFORM countersign_inbox_apply(v_batch, false);
    v_read := v_read + cardinality(v_batch);
    v_after := (v_batch[cardinality(v_batch)]).position;
  END LOOP;
  RETURN QUERY SELECT v_read, (SELECT count(*) FROM approval_inbox);
END $$;

-- Rounds already in the log are projected now.
SELECT * FROM countersign_inbox_rebuild();

-- Down Migration
DROP FUNCTION countersign_inbox_rebuild(integer);
DROP TRIGGER events_inbox ON events;
DROP FUNCTION countersign_inbox_on_append();
DROP FUNCTION countersign_inbox_apply(events[], boolean);
DROP FUNCTION countersign_inbox_close(text, text, boolean);
DROP FUNCTION countersign_inbox_notify(approval_inbox, text, text, text[], text[]);
DROP TABLE approval_inbox_audience;
DROP TABLE approval_inbox;
