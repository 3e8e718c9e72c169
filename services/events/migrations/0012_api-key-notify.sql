-- Up Migration
-- API keys are cached by the API for the request path (services/identity/key-cache.ts); every change to a
-- key or to a principal wakes every API's cache when it commits (LISTEN api_key_changed). A key names
-- itself by its public prefix; a principal's change (roles, groups, disabled) drops every cached key.
CREATE FUNCTION countersign_notify_api_key_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_LEVEL = 'STATEMENT' THEN
    PERFORM pg_notify('api_key_changed', '*');
  ELSIF TG_TABLE_NAME = 'api_keys' THEN
    PERFORM pg_notify('api_key_changed', 'key:' || coalesce(NEW.prefix, OLD.prefix));
    IF TG_OP = 'UPDATE' AND NEW.prefix IS DISTINCT FROM OLD.prefix THEN
      PERFORM pg_notify('api_key_changed', 'key:' || OLD.prefix);
    END IF;
  ELSE
    PERFORM pg_notify('api_key_changed', '*');
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER api_keys_notify AFTER INSERT OR UPDATE OR DELETE ON api_keys
  FOR EACH ROW EXECUTE FUNCTION countersign_notify_api_key_change();
CREATE TRIGGER api_keys_truncate_notify AFTER TRUNCATE ON api_keys
  FOR EACH STATEMENT EXECUTE FUNCTION countersign_notify_api_key_change();
CREATE TRIGGER principals_notify AFTER UPDATE OR DELETE ON principals
  FOR EACH ROW EXECUTE FUNCTION countersign_notify_api_key_change();
CREATE TRIGGER principals_truncate_notify AFTER TRUNCATE ON principals
  FOR EACH STATEMENT EXECUTE FUNCTION countersign_notify_api_key_change();

-- Down Migration
DROP TRIGGER principals_truncate_notify ON principals;
DROP TRIGGER principals_notify ON principals;
DROP TRIGGER api_keys_truncate_notify ON api_keys;
DROP TRIGGER api_keys_notify ON api_keys;
DROP FUNCTION countersign_notify_api_key_change();
