-- Up Migration

-- The append in one round trip (issue 4, performance). services/events/append-to-stream.ts hashes the new
-- rows against the stream head it believes current and calls this function, which (inside whatever
-- transaction it runs in: usually the statement's own) takes the stream's advisory lock, reads the head, and
-- inserts the rows only if they chain onto that head. The guarantees of the append are unchanged:
-- - chains cannot fork: the lock comes before the head read, and rows are inserted only when the first one's
--   version and prev_hash are exactly the locked head's and the rest chain onto it; otherwise nothing is
--   written and 'stale' returns the head, for the caller to rehash and call again;
-- - the transaction id is still assigned by the insert, after the lock (the publisher relies on tx ids rising
--   in stream order);
-- - optimistic concurrency: an expected version that is not the head's returns 'conflict' and writes nothing;
--   derived event ids still meet events_event_id_unique (23505 reaches the caller, who reports a duplicate);
-- - SECURITY INVOKER: row-level security, the triggers and the application role's grants apply as before;
--   the function only sets the transaction-local tenant scope that withTenant sets.
CREATE FUNCTION countersign_append(p_tenant text, p_stream text, p_expected integer, p_rows jsonb)
RETURNS TABLE (out_status text, out_version integer, out_hash text)
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
  v_version integer;
  v_hash text;
  v_count integer := jsonb_array_length(p_rows);
  v_row jsonb;
BEGIN
  IF v_count = 0 THEN
    RAISE EXCEPTION 'countersign_append: nothing to append' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM set_config('countersign.tenant_id', p_tenant, true);
  PERFORM pg_advisory_xact_lock(hashtextextended(p_stream, 0));
  SELECT e.stream_version, e.hash INTO v_version, v_hash
    FROM events e WHERE e.stream_id = p_stream ORDER BY e.stream_version DESC LIMIT 1;
  v_version := coalesce(v_version, 0);
  IF p_expected IS NOT NULL AND p_expected <> v_version THEN
    RETURN QUERY SELECT 'conflict'::text, v_version, v_hash;
    RETURN;
  END IF;
  IF (p_rows -> 0 ->> 'stream_version')::integer IS DISTINCT FROM v_version + 1
     OR (p_rows -> 0 ->> 'prev_hash') IS DISTINCT FROM v_hash THEN
    RETURN QUERY SELECT 'stale'::text, v_version, v_hash;
    RETURN;
  END IF;
  -- The rows must chain onto each other too (the caller computed them; a bug there must not fork a chain).
  FOR i IN 1 .. v_count - 1 LOOP
    v_row := p_rows -> i;
    IF (v_row ->> 'stream_version')::integer IS DISTINCT FROM v_version + 1 + i
       OR (v_row ->> 'prev_hash') IS DISTINCT FROM (p_rows -> (i - 1) ->> 'hash') THEN
      RAISE EXCEPTION 'countersign_append: row % does not chain onto row %', i + 1, i USING ERRCODE = 'invalid_parameter_value';
    END IF;
  END LOOP;
  INSERT INTO events (stream_id, stream_version, event_id, type, schema_version, tenant_id, data, metadata, recorded_at, prev_hash, hash)
    SELECT p_stream, (r.j ->> 'stream_version')::integer, r.j ->> 'event_id', r.j ->> 'type', (r.j ->> 'schema_version')::integer,
           p_tenant, r.j -> 'data', r.j -> 'metadata', (r.j ->> 'recorded_at')::timestamptz, r.j ->> 'prev_hash', r.j ->> 'hash'
      FROM jsonb_array_elements(p_rows) WITH ORDINALITY AS r(j, ord)
     ORDER BY r.ord;
  RETURN QUERY SELECT 'ok'::text, v_version + v_count, p_rows -> (v_count - 1) ->> 'hash';
END $$;

-- The publisher's read in one round trip (services/publisher/outbox.ts): the next safe batch after a
-- (tx_id, position) checkpoint, and (optionally) the checkpoint of the last batch Kafka acknowledged, in one
-- call. The read's snapshot is taken before the checkpoint write gives this transaction an id, so the batch
-- is exactly what readSafeBatch's own SELECT would return; both happen in one transaction or not at all.
CREATE FUNCTION countersign_outbox_read(p_after_tx xid8, p_after_position bigint, p_limit integer, p_ack_name text, p_ack_tx xid8, p_ack_position bigint)
RETURNS TABLE (r_position bigint, r_stream_id text, r_stream_version integer, r_event_id text, r_type text, r_schema_version integer,
               r_tenant_id text, r_data jsonb, r_metadata jsonb, r_recorded_at timestamptz, r_prev_hash text, r_hash text, r_tx_id text)
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
  PERFORM set_config('countersign.system', 'publisher', true);
  -- ORDER BY names the table's columns (see readSafeBatch: xids ordered as text skip rows).
  RETURN QUERY
    SELECT e.position, e.stream_id, e.stream_version, e.event_id, e.type, e.schema_version, e.tenant_id, e.data, e.metadata,
           e.recorded_at, e.prev_hash, e.hash, e.tx_id::text
      FROM events e
     WHERE (e.tx_id, e.position) > (p_after_tx, p_after_position)
       AND e.tx_id < pg_snapshot_xmin(pg_current_snapshot())
     ORDER BY e.tx_id, e.position
     LIMIT p_limit;
  IF p_ack_name IS NOT NULL THEN
    INSERT INTO publisher_checkpoints AS c (name, tx_id, position, updated_at) VALUES (p_ack_name, p_ack_tx, p_ack_position, now())
      ON CONFLICT (name) DO UPDATE SET tx_id = EXCLUDED.tx_id, position = EXCLUDED.position, updated_at = now();
  END IF;
END $$;

-- Down Migration
DROP FUNCTION countersign_outbox_read(xid8, bigint, integer, text, xid8, bigint);
DROP FUNCTION countersign_append(text, text, integer, jsonb);
