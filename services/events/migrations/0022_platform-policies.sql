-- Up Migration

-- Platform policies are their own streams: `platform/policy/<policy>` (and the platform's policy settings,
-- `platform/settings`), whose events carry ':platform' in tenant_id. That value is outside the tenant id
-- grammar (the tenants table's CHECK), so no tenant can ever own them: the reserved tenant id 'platform' that
-- held them before (by convention only) gave the authority over platform policies to whoever could be a
-- member of a tenant of that name. Platform admins write them in the ':platform' scope
-- (services/lifecycle/platform-policies.ts).
--
-- Every tenant reads platform policy streams (their active versions apply to it, and it must be able to see
-- why it was denied), never the platform settings, and writes none of them (events_tenant's WITH CHECK).
DROP POLICY events_platform_policies ON events;
CREATE POLICY events_platform_policies ON events FOR SELECT
  USING (tenant_id = ':platform' AND left(stream_id, 16) = 'platform/policy/' AND countersign_tenant() IS NOT NULL);

-- A platform policy change wakes every API's snapshot cache (the payload ':platform' drops every tenant's set).
DROP TRIGGER events_policy_notify ON events;
CREATE TRIGGER events_policy_notify AFTER INSERT ON events
  FOR EACH ROW WHEN (left(NEW.stream_id, 7) = 'policy/' OR left(NEW.stream_id, 6) = 'agent/' OR left(NEW.stream_id, 16) = 'platform/policy/')
  EXECUTE FUNCTION countersign_notify_policy_change();

-- Down Migration
DROP TRIGGER events_policy_notify ON events;
CREATE TRIGGER events_policy_notify AFTER INSERT ON events
  FOR EACH ROW WHEN (left(NEW.stream_id, 7) = 'policy/' OR left(NEW.stream_id, 6) = 'agent/')
  EXECUTE FUNCTION countersign_notify_policy_change();
DROP POLICY events_platform_policies ON events;
CREATE POLICY events_platform_policies ON events FOR SELECT
  USING (tenant_id = 'platform' AND countersign_tenant() IS NOT NULL);
