-- Up Migration

-- Rate-limit permits leased in blocks (services/api/rate-buckets.ts LeasedRateBuckets): an API process takes
-- permits from a bucket's window in `rate_windows` (migration 0027) and spends them from memory, so most
-- requests cost no round trip, while the permits granted in one window, over every process, never exceed the
-- limit. `hits` counts the permits granted in the window (a process of the per-request kind,
-- countersign_rate_hit, counts one per request in the same column, so both kinds together stay within it).

-- Grants up to p_need permits of p_bucket's current window (starting a new window if it ended), as far as the
-- limit p_max allows, plus up to p_extra spare permits: at most a quarter of what the limit leaves after the
-- needed ones, and none from the last quarter of the limit, so that near the end of a window's permits no
-- process holds spares that another process's clients then miss (every permit there costs a round trip).
-- Answers what was granted, the window it belongs to (its start, by the database's clock, which names it in
-- countersign_rate_return) and the milliseconds until it ends. One round trip; concurrent leases of one
-- bucket serialize on its row.
CREATE FUNCTION countersign_rate_lease(p_bucket text, p_window_ms integer, p_max integer, p_need integer, p_extra integer)
RETURNS TABLE (granted integer, window_start bigint, reset_ms bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  now_ms bigint := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
  started bigint;
  used integer;
  for_need integer;
  for_extra integer;
BEGIN
  INSERT INTO rate_windows AS r (bucket, window_start, hits) VALUES (p_bucket, now_ms, 0)
  ON CONFLICT (bucket) DO UPDATE
    SET hits = CASE WHEN r.window_start + p_window_ms > now_ms THEN r.hits ELSE 0 END,
        window_start = CASE WHEN r.window_start + p_window_ms > now_ms THEN r.window_start ELSE now_ms END
  RETURNING r.window_start, r.hits INTO started, used;
  for_need := greatest(0, least(p_need, p_max - used));
  for_extra := greatest(0, least(p_extra, (p_max - used - for_need - p_max / 4) / 4));
  IF for_need + for_extra > 0 THEN
    UPDATE rate_windows SET hits = hits + for_need + for_extra WHERE bucket = p_bucket;
  END IF;
  RETURN QUERY SELECT for_need + for_extra, started, started + p_window_ms - now_ms;
END
$$;

-- Gives back p_count unspent permits of the window that started at p_window_start (a process whose client
-- went quiet, or that is stopping). A window that has ended meanwhile is left alone: its permits are void.
CREATE FUNCTION countersign_rate_return(p_bucket text, p_window_start bigint, p_count integer)
RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  UPDATE rate_windows SET hits = greatest(0, hits - greatest(0, p_count))
  WHERE bucket = p_bucket AND window_start = p_window_start
$$;

-- Down Migration
DROP FUNCTION countersign_rate_return(text, bigint, integer);
DROP FUNCTION countersign_rate_lease(text, integer, integer, integer, integer);
