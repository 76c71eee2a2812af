-- The time-series store (database campus_ts): every domain and CDC event, one row each.
-- Applied once as the superuser by stack/postgres/migrate.sh (psql, one transaction).
--
-- Two storage paths, chosen here, with the same interface for the service:
--   timescaledb           hypertable, continuous aggregate, retention and compression policies
--   postgres-partitioned  monthly range partitions + default, BRIN on time, a time_bucket() on
--                         date_bin(), a materialized rollup refreshed by the service
-- What both expose: table `events`, table `storage_path`, table `projection_freshness`,
-- time_bucket(interval, timestamptz), event_buckets(width, since, type) (event counts per bucket
-- and type from the rollups plus the rows not rolled up yet), refresh_rollups() and
-- ensure_partitions(ahead) (no-ops where TimescaleDB does that work itself).

-- The extension must be installed AND preloaded: CREATE EXTENSION fails without the preload.
SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
       AND current_setting('shared_preload_libraries') ILIKE '%timescaledb%' AS use_timescaledb
\gset

CREATE TABLE storage_path (
    id   boolean NOT NULL DEFAULT true,
    path text    NOT NULL,
    CONSTRAINT storage_path_pkey PRIMARY KEY (id),
    CONSTRAINT storage_path_single_row_check CHECK (id),
    CONSTRAINT storage_path_path_check CHECK (path IN ('timescaledb', 'postgres-partitioned'))
);

-- The newest CDC heartbeat each projection applied: how stale its view of the sources may be.
CREATE TABLE projection_freshness (
    projection text        NOT NULL,
    beat_at    timestamptz NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT projection_freshness_pkey PRIMARY KEY (projection)
);

\if :use_timescaledb

CREATE EXTENSION IF NOT EXISTS timescaledb;
INSERT INTO storage_path (path) VALUES ('timescaledb');

CREATE TABLE events (
    time       timestamptz NOT NULL,
    user_id    bigint,
    event_type text        NOT NULL,
    properties jsonb       NOT NULL DEFAULT '{}',
    source     text        NOT NULL,
    dedupe_key text COLLATE "C" NOT NULL,  -- compared byte-wise: cheaper key checks
    -- A unique key on a hypertable must contain the time column.
    CONSTRAINT events_pkey PRIMARY KEY (dedupe_key, time)
);
SELECT create_hypertable('events', 'time', chunk_time_interval => INTERVAL '1 day');
CREATE INDEX events_user_id_time_idx ON events (user_id, time DESC);

-- Real-time aggregate: materialized buckets plus the raw rows newer than its watermark.
CREATE MATERIALIZED VIEW events_per_minute_rollup
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 minute', time) AS bucket, event_type,
       count(*) AS events, max(time) AS newest
FROM events
GROUP BY bucket, event_type
WITH NO DATA;  -- WITH DATA cannot run inside the migration's transaction
-- No start offset: CDC "created" rows carry the row's created_at, which can be far in the past.
SELECT add_continuous_aggregate_policy('events_per_minute_rollup',
    start_offset => NULL, end_offset => INTERVAL '1 minute',
    schedule_interval => INTERVAL '1 minute');

ALTER TABLE events SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'event_type',
    timescaledb.compress_orderby = 'time DESC, dedupe_key'
);
SELECT add_compression_policy('events', INTERVAL '7 days');
SELECT add_retention_policy('events', INTERVAL '365 days');

-- Same signature and result as the partitioned path's; the real-time aggregate already adds
-- the rows newer than its watermark.
CREATE FUNCTION event_buckets(width interval, since timestamptz DEFAULT '-infinity',
                              only_type text DEFAULT NULL)
RETURNS TABLE (bucket timestamptz, event_type text, events bigint, newest timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT time_bucket(width, r.bucket), r.event_type, sum(r.events)::bigint, max(r.newest)
    FROM events_per_minute_rollup r
    WHERE r.bucket >= CASE WHEN isfinite(since) THEN time_bucket(width, since) ELSE since END
      AND (only_type IS NULL OR r.event_type = only_type)
    GROUP BY 1, 2
$$;

-- The policies above do this work; the functions exist so the service runs the same calls.
CREATE FUNCTION refresh_rollups() RETURNS boolean LANGUAGE sql AS $$ SELECT false $$;
CREATE FUNCTION ensure_partitions(ahead interval DEFAULT INTERVAL '3 months')
RETURNS integer LANGUAGE sql AS $$ SELECT 0 $$;

\else

INSERT INTO storage_path (path) VALUES ('postgres-partitioned');

CREATE TABLE events (
    time       timestamptz NOT NULL,
    user_id    bigint,
    event_type text        NOT NULL,
    properties jsonb       NOT NULL DEFAULT '{}',
    source     text        NOT NULL,
    dedupe_key text COLLATE "C" NOT NULL,  -- compared byte-wise: cheaper key checks
    -- A unique key on a partitioned table must contain the partition key.
    CONSTRAINT events_pkey PRIMARY KEY (dedupe_key, time)
) PARTITION BY RANGE (time);
-- Catches rows outside the monthly partitions (old created_at values, far-future clocks).
CREATE TABLE events_default PARTITION OF events DEFAULT;
-- Rows arrive roughly in time order, so a BRIN index is tiny and prunes well. Block ranges
-- are only useful once summarized: autovacuum does it, refresh_rollups() below too.
CREATE INDEX events_time_brin ON events USING brin (time)
    WITH (pages_per_range = 32, autosummarize = on);
CREATE INDEX events_user_id_time_idx ON events (user_id, time DESC);

-- TimescaleDB's time_bucket(interval, timestamptz) for widths up to a day; same origin
-- (Monday 2000-01-03 UTC), so both paths put a row in the same bucket.
CREATE FUNCTION time_bucket(bucket_width interval, ts timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN date_bin(bucket_width, ts, TIMESTAMPTZ '2000-01-03 00:00:00+00');

-- Monthly partitions from this month to now() + ahead. Rows already in the default partition
-- for a new month are moved into it, since attaching over them would fail.
CREATE FUNCTION ensure_partitions(ahead interval DEFAULT INTERVAL '3 months')
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
SET timezone = 'UTC'
AS $$
DECLARE
    month_start timestamptz := date_trunc('month', now());
    month_end   timestamptz;
    part        text;
    created     integer := 0;
BEGIN
    WHILE month_start <= now() + ahead LOOP
        month_end := month_start + INTERVAL '1 month';
        part := 'events_' || to_char(month_start, 'YYYY_MM');
        IF to_regclass(part) IS NULL THEN
            EXECUTE format('CREATE TABLE %I (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
            EXECUTE format(
                'WITH moved AS (DELETE FROM events_default WHERE time >= %L AND time < %L RETURNING *) '
                'INSERT INTO %I SELECT * FROM moved', month_start, month_end, part);
            EXECUTE format('ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                           part, month_start, month_end);
            created := created + 1;
        END IF;
        month_start := month_end;
    END LOOP;
    RETURN created;
END
$$;
DO $$ BEGIN PERFORM ensure_partitions(); END $$;

CREATE MATERIALIZED VIEW events_per_minute_rollup AS
SELECT time_bucket(INTERVAL '1 minute', time) AS bucket, event_type,
       count(*) AS events, max(time) AS newest
FROM events
GROUP BY 1, 2;
-- REFRESH ... CONCURRENTLY needs a unique index without a WHERE clause.
CREATE UNIQUE INDEX events_per_minute_rollup_key ON events_per_minute_rollup (bucket, event_type);
-- Days from minutes, so all-time totals read days x types rows rather than minutes x types.
CREATE MATERIALIZED VIEW events_per_day_rollup AS
SELECT time_bucket(INTERVAL '1 day', bucket) AS bucket, event_type,
       sum(events)::bigint AS events, max(newest) AS newest
FROM events_per_minute_rollup
GROUP BY 1, 2;
CREATE UNIQUE INDEX events_per_day_rollup_key ON events_per_day_rollup (bucket, event_type);

-- Rows before the watermark are read from the rollups, rows at or after it from `events`.
CREATE TABLE rollup_state (
    name         text        NOT NULL,
    watermark    timestamptz NOT NULL,
    refreshed_at timestamptz,
    CONSTRAINT rollup_state_pkey PRIMARY KEY (name)
);
INSERT INTO rollup_state (name, watermark) VALUES ('events', '-infinity');

-- Readers never block on it (CONCURRENTLY) and two refreshers never run at once (the lock).
-- The watermark trails now() by a minute so rows still in flight (CDC, relays) are read raw;
-- a row older than the watermark that arrives late is counted from the next refresh on.
CREATE FUNCTION refresh_rollups() RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    mark timestamptz := time_bucket(INTERVAL '1 minute', now() - INTERVAL '1 minute');
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('refresh_rollups')) THEN
        RETURN false;
    END IF;
    -- Unsummarized BRIN ranges match every query: summarize what was filled since last time.
    PERFORM brin_summarize_new_values(i.inhrelid)
    FROM pg_inherits i WHERE i.inhparent = 'events_time_brin'::regclass;
    REFRESH MATERIALIZED VIEW CONCURRENTLY events_per_minute_rollup;
    REFRESH MATERIALIZED VIEW CONCURRENTLY events_per_day_rollup;
    UPDATE rollup_state SET watermark = mark, refreshed_at = clock_timestamp() WHERE name = 'events';
    RETURN true;
END
$$;

-- Whole days before the watermark's day come from the day rollup (when the width is whole
-- days), the rest up to the watermark from the minute rollup, the tail from `events`. Literal
-- bounds (EXECUTE) let the planner prune partitions and use BRIN for the tail.
CREATE FUNCTION event_buckets(width interval, since timestamptz DEFAULT '-infinity',
                              only_type text DEFAULT NULL)
RETURNS TABLE (bucket timestamptz, event_type text, events bigint, newest timestamptz)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    mark     timestamptz;
    day_mark timestamptz := '-infinity';
    by_type  text := CASE WHEN only_type IS NULL THEN '' ELSE format(' AND event_type = %L', only_type) END;
BEGIN
    SELECT s.watermark INTO mark FROM rollup_state s WHERE s.name = 'events';
    IF isfinite(since) THEN
        since := time_bucket(width, since);
    END IF;
    IF isfinite(mark) AND extract(epoch FROM width)::bigint % 86400 = 0 THEN
        day_mark := time_bucket(INTERVAL '1 day', mark);
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT time_bucket(%1$L, p.b), p.t, sum(p.n)::bigint, max(p.m) FROM ('
        '  SELECT bucket, event_type, events, newest FROM events_per_day_rollup'
        '   WHERE bucket >= %2$L AND bucket < %3$L %7$s'
        '  UNION ALL'
        '  SELECT bucket, event_type, events, newest FROM events_per_minute_rollup'
        '   WHERE bucket >= %4$L AND bucket < %5$L %7$s'
        '  UNION ALL'
        '  SELECT time, event_type, 1, time FROM events WHERE time >= %6$L %7$s'
        ') AS p (b, t, n, m) GROUP BY 1, 2',
        width, since, day_mark, greatest(since, day_mark), mark, greatest(since, mark), by_type);
END
$$;

\endif

-- The service role (created by stack/postgres/init.sh before migrations) gets its table grants
-- from init.sh; temporary tables, the rollups and the SECURITY DEFINER functions are granted
-- here.
REVOKE EXECUTE ON FUNCTION refresh_rollups(), ensure_partitions(interval) FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'campus_ts') THEN
        GRANT USAGE ON SCHEMA public TO campus_ts;
        -- Batches are COPYed into a temporary table, then merged with ON CONFLICT DO NOTHING.
        EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO campus_ts', current_database());
        GRANT SELECT ON ALL TABLES IN SCHEMA public TO campus_ts;
        GRANT EXECUTE ON FUNCTION refresh_rollups(), ensure_partitions(interval),
            event_buckets(interval, timestamptz, text) TO campus_ts;
    END IF;
END
$$;
