-- The trace context of the request that last wrote a row, so Debezium carries it to every
-- projection inside the change event itself (the same row, the same transaction, the same
-- record). A column rather than a logical decoding message (pg_logical_emit_message): the
-- message would reach Kafka as a separate record on a separate topic, and each projection would
-- have to join messages to changes by transaction id across topics and partitions, holding
-- changes back until their message arrives. docs/architecture.md has the whole comparison.
ALTER TABLE users ADD COLUMN trace_context text;
ALTER TABLE groups ADD COLUMN trace_context text;
ALTER TABLE group_memberships ADD COLUMN trace_context text;

-- A write that does not set the column (a psql UPDATE, a migration) must not inherit the context
-- of the request that wrote the row before: it would attach a change nobody traced to an old
-- trace. So an UPDATE that leaves the column as it was clears it, and the projection starts a
-- new trace for that change. (Every traced write sets a new value: each request has its own
-- span id.)
CREATE FUNCTION clear_stale_trace_context() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.trace_context IS NOT DISTINCT FROM OLD.trace_context THEN
        NEW.trace_context := NULL;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER users_clear_stale_trace_context BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION clear_stale_trace_context();
CREATE TRIGGER groups_clear_stale_trace_context BEFORE UPDATE ON groups
    FOR EACH ROW EXECUTE FUNCTION clear_stale_trace_context();
CREATE TRIGGER group_memberships_clear_stale_trace_context BEFORE UPDATE ON group_memberships
    FOR EACH ROW EXECUTE FUNCTION clear_stale_trace_context();
