-- Up Migration

-- Stream ids are composed with `/`, which no tenant, policy, agent or decision id contains
-- (services/events/stream-ids.ts): `run/<decision>`, `policy/<tenant>/<policy>`, `agent/<tenant>/<agent>`,
-- `catalog/<tenant>`. The `-` form let two tenants' streams be one (tenant `acme`'s policy `corp-refunds` and
-- tenant `acme-corp`'s `refunds` were both `policy-acme-corp-refunds`).
--
-- Existing rows are renamed here so that every stream goes on under its current id (appends, reads and the
-- unique (stream_id, stream_version) constraint see one name). Their hashes are kept, not recomputed:
-- - a recomputed hash would no longer be the head hash that signed receipts (ReceiptIssued) cover, so
--   `audit replay` would reject every receipt signed so far, and nothing here can sign again;
-- - the Kafka topic keeps its copies as published, with the old ids and these same hashes.
-- So an event's hash covers the id it was appended under: for the rows renamed here, the `-` form of their
-- new id, which services/events/hash-chain.ts (eventHashMatches) and the receipt check (asSigned) accept.
-- That form is unambiguous given the event's tenant, which the hash covers and replay checks against the id.
-- Readers of an unmigrated copy (the Kafka topic) map old ids the same way (stream-ids.ts currentStreamId).
--
-- No old stream can hold two tenants' events: an append to a name another tenant held collided with that
-- tenant's rows (unique stream version) and wrote nothing, so each row maps by its own tenant_id.

-- The log refuses UPDATE even from its owner; the rename is the one exception, inside this transaction.
-- Row-level security applies to the owner too (FORCE): the rename runs in the system scope.
SELECT set_config('countersign.system', 'migration 0014: stream ids', true);
ALTER TABLE events DISABLE TRIGGER events_no_update_delete;

UPDATE events SET stream_id = 'run/' || substr(stream_id, 5)
 WHERE left(stream_id, 4) = 'run-' AND length(stream_id) > 4;
UPDATE events SET stream_id = 'policy/' || tenant_id || '/' || substr(stream_id, length('policy-' || tenant_id || '-') + 1)
 WHERE left(stream_id, length('policy-' || tenant_id || '-')) = 'policy-' || tenant_id || '-'
   AND length(stream_id) > length('policy-' || tenant_id || '-');
UPDATE events SET stream_id = 'agent/' || tenant_id || '/' || substr(stream_id, length('agent-' || tenant_id || '-') + 1)
 WHERE left(stream_id, length('agent-' || tenant_id || '-')) = 'agent-' || tenant_id || '-'
   AND length(stream_id) > length('agent-' || tenant_id || '-');
UPDATE events SET stream_id = 'catalog/' || tenant_id
 WHERE stream_id = 'catalog-' || tenant_id;

ALTER TABLE events ENABLE TRIGGER events_no_update_delete;

-- The triggers that wake caches select streams by their kind.
DROP TRIGGER events_policy_notify ON events;
CREATE TRIGGER events_policy_notify AFTER INSERT ON events
  FOR EACH ROW WHEN (left(NEW.stream_id, 7) = 'policy/' OR left(NEW.stream_id, 6) = 'agent/')
  EXECUTE FUNCTION countersign_notify_policy_change();
DROP TRIGGER events_tool_catalog_notify ON events;
CREATE TRIGGER events_tool_catalog_notify AFTER INSERT ON events
  FOR EACH ROW WHEN (left(NEW.stream_id, 8) = 'catalog/')
  EXECUTE FUNCTION countersign_notify_tool_catalog_change();

-- Down Migration
SELECT set_config('countersign.system', 'migration 0014 down: stream ids', true);
ALTER TABLE events DISABLE TRIGGER events_no_update_delete;
UPDATE events SET stream_id = replace(stream_id, '/', '-')
 WHERE left(stream_id, 4) = 'run/' OR left(stream_id, 7) = 'policy/' OR left(stream_id, 6) = 'agent/' OR left(stream_id, 8) = 'catalog/';
ALTER TABLE events ENABLE TRIGGER events_no_update_delete;
DROP TRIGGER events_policy_notify ON events;
CREATE TRIGGER events_policy_notify AFTER INSERT ON events
  FOR EACH ROW WHEN (NEW.stream_id LIKE 'policy-%' OR NEW.stream_id LIKE 'agent-%')
  EXECUTE FUNCTION countersign_notify_policy_change();
DROP TRIGGER events_tool_catalog_notify ON events;
CREATE TRIGGER events_tool_catalog_notify AFTER INSERT ON events
  FOR EACH ROW WHEN (NEW.stream_id LIKE 'catalog-%')
  EXECUTE FUNCTION countersign_notify_tool_catalog_change();
