-- Up Migration

-- Rate limits shared by every API process (services/api/rate-limits.ts): one fixed-window counter per bucket
-- (a principal, or a client address), counted here so that N API processes behind a load balancer allow the
-- limit once, not N times. UNLOGGED: a counter is worth nothing after a crash (its window is a minute), and
-- skipping the WAL keeps a request's count one cheap upsert. A bucket's window starts at its first hit (as the
-- in-memory counters did), by the database's clock: every process agrees on it, whatever its own clock says.
CREATE UNLOGGED TABLE rate_windows (
  bucket        text PRIMARY KEY,
  window_start  bigint NOT NULL,
  hits          integer NOT NULL
);
-- Only the functions below touch it (SECURITY DEFINER): the application role has no grant on the table.
REVOKE ALL ON rate_windows FROM PUBLIC;

-- One request counted against p_bucket in its window of p_window_ms (a hit after the window ended starts a new
-- one): answers the count so far in this window, and the milliseconds until the window ends. One statement,
-- one round trip, no transaction of the caller's; concurrent hits on one bucket serialize on its row.
CREATE FUNCTION countersign_rate_hit(p_bucket text, p_window_ms integer)
RETURNS TABLE (hits integer, reset_ms bigint)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  WITH clock AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now_ms)
  INSERT INTO rate_windows AS r (bucket, window_start, hits)
  SELECT p_bucket, c.now_ms, 1 FROM clock c
  ON CONFLICT (bucket) DO UPDATE
    SET hits = CASE WHEN r.window_start + p_window_ms > EXCLUDED.window_start THEN r.hits + 1 ELSE 1 END,
        window_start = CASE WHEN r.window_start + p_window_ms > EXCLUDED.window_start THEN r.window_start ELSE EXCLUDED.window_start END
  RETURNING r.hits, r.window_start + p_window_ms - (SELECT now_ms FROM clock)
$$;

-- Drops the counters whose window ended (each API process calls it about once a window): the table holds at
-- most the buckets seen in the last window or two, however many distinct clients there were before.
CREATE FUNCTION countersign_rate_sweep(p_window_ms integer)
RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  WITH gone AS (
    DELETE FROM rate_windows
    WHERE window_start + p_window_ms < (extract(epoch FROM clock_timestamp()) * 1000)::bigint
    RETURNING 1
  )
  SELECT count(*) FROM gone
$$;

-- Down Migration
DROP FUNCTION countersign_rate_sweep(integer);
DROP FUNCTION countersign_rate_hit(text, integer);
DROP TABLE rate_windows;
