-- Up Migration

-- Wakes the API's long-polls (GET /v1/decisions/{id}?wait=N) the moment a run becomes final, instead of
-- polling: the payload is the run's stream id, delivered when the appending transaction commits.
CREATE FUNCTION countersign_notify_run_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('run_final', NEW.stream_id);
  RETURN NULL;
END $$;
CREATE TRIGGER events_run_final_notify AFTER INSERT ON events
  FOR EACH ROW WHEN (NEW.type = 'DecisionFinalized')
  EXECUTE FUNCTION countersign_notify_run_final();

-- Down Migration
DROP TRIGGER events_run_final_notify ON events;
DROP FUNCTION countersign_notify_run_final();
