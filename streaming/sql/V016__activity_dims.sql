-- The activity rows without their wiki: per minute (and hour) and combination of namespace,
-- type, bot and minor. Filters by those dimensions alone (human article edits, say) are what
-- the dashboards' series and breakdowns use most; over activity_minute they read every wiki's
-- row of each minute of the window (3 hours of human article edits: about 27,000 rows, spread
-- over the pages of all 81,000 rows of those minutes in the benchmark's synthetic data), over
-- these a few rows per minute.
--
-- Each table always equals an aggregate of its activity table: a statement trigger adds what
-- a statement inserts and subtracts what it deletes, so the stream's upserts, the roll-up's
-- replace, the batch layer's replace and retention all keep it, as the slices of V013 are kept.
CREATE TABLE activity_dims_minute (
    window_start  timestamptz NOT NULL,
    namespace     integer,
    type          text NOT NULL,
    is_bot        boolean NOT NULL,
    is_minor      boolean NOT NULL,
    events        bigint NOT NULL,
    bytes_added   bigint NOT NULL,
    bytes_removed bigint NOT NULL,
    net_bytes     bigint NOT NULL,
    UNIQUE NULLS NOT DISTINCT (window_start, namespace, type, is_bot, is_minor)
);
CREATE TABLE activity_dims_hour (LIKE activity_dims_minute INCLUDING ALL);

-- The statement that adds a signed set of activity rows (`sign` +1 or -1 and the activity
-- table's columns, as SQL) to the table `dims`. One text for the triggers and the first fill.
CREATE FUNCTION dims_statement(dims text, delta text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
SELECT format('INSERT INTO %1$I AS t SELECT window_start, namespace, type, is_bot, is_minor, '
              'bigsum(sign * events), bigsum(sign * bytes_added), '
              'bigsum(sign * bytes_removed), bigsum(sign * net_bytes) FROM (%2$s) AS d '
              'GROUP BY 1, 2, 3, 4, 5 HAVING (bigsum(sign * events), '
              'bigsum(sign * bytes_added), bigsum(sign * bytes_removed), '
              'bigsum(sign * net_bytes)) <> (0, 0, 0, 0) '
              'ON CONFLICT (window_start, namespace, type, is_bot, is_minor) '
              'DO UPDATE SET events = t.events + EXCLUDED.events, '
              'bytes_added = t.bytes_added + EXCLUDED.bytes_added, '
              'bytes_removed = t.bytes_removed + EXCLUDED.bytes_removed, '
              'net_bytes = t.net_bytes + EXCLUDED.net_bytes', dims, delta)
$$;

-- Argument: the dims table. The transition tables are only visible here.
CREATE FUNCTION keep_dims() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    dims constant text := TG_ARGV[0];
BEGIN
    EXECUTE dims_statement(dims, CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT 1::bigint AS sign, * FROM added'
        WHEN 'DELETE' THEN 'SELECT -1::bigint AS sign, * FROM removed'
        ELSE 'SELECT 1::bigint AS sign, * FROM added UNION ALL '
             'SELECT -1::bigint AS sign, * FROM removed'
    END);
    IF TG_OP <> 'INSERT' THEN
        -- combinations whose rows all went (activity rows count at least one event)
        EXECUTE format('DELETE FROM %I WHERE events = 0 AND window_start IN '
                       '(SELECT DISTINCT window_start FROM removed)', dims);
    END IF;
    RETURN NULL;
END
$$;

-- The three statement triggers that call fn(args) for a table's inserts, updates and deletes
-- with their transition tables (`added`, `removed`), named <source>_<name>_inserted, and so on.
CREATE FUNCTION statement_triggers(source text, name text, fn text, args text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    ev record;
BEGIN
    FOR ev IN SELECT * FROM (VALUES ('INSERT', 'inserted', 'NEW TABLE AS added'),
                                    ('UPDATE', 'updated', 'OLD TABLE AS removed NEW TABLE AS added'),
                                    ('DELETE', 'deleted', 'OLD TABLE AS removed')) AS e(op, suffix, refs)
    LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER %s ON %I REFERENCING %s FOR EACH STATEMENT '
                       'EXECUTE FUNCTION %I(%s)', source || '_' || name || '_' || ev.suffix,
                       ev.op, source, ev.refs, fn, args);
    END LOOP;
END
$$;

SELECT statement_triggers('activity_minute', 'dims', 'keep_dims',
                          quote_literal('activity_dims_minute'));
SELECT statement_triggers('activity_hour', 'dims', 'keep_dims', quote_literal('activity_dims_hour'));

DO $$
BEGIN
    EXECUTE dims_statement('activity_dims_minute',
                           'SELECT 1::bigint AS sign, * FROM activity_minute');
    EXECUTE dims_statement('activity_dims_hour', 'SELECT 1::bigint AS sign, * FROM activity_hour');
END
$$;
