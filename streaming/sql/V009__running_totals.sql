-- Sliding-window totals per page and per user for the lookbacks the dashboards offer, so a
-- live top list is an index scan instead of an aggregate over every minute row of the window
-- (an hour: about 80,000 mostly different pages).
--
-- For each (family, lookback) running_marks holds `newest`, the newest window_start ever
-- written to the family's minute table, and `from_minute` = newest + 1 minute - lookback
-- (it only moves forward). page_running / user_running hold, per lookback and key, the sums
-- of the minute rows with window_start >= from_minute. Triggers on the minute tables keep
-- them so for every write (the stream job, the batch layer's replace, retention, tests):
-- changed rows at or after from_minute add (or, deleted, subtract) their counters, and when
-- `newest` moves on, the rows that leave [from_minute, ...) are subtracted.
--
-- The query API reads these only for a window that ends after `newest` and starts at or
-- after from_minute: the window's sums are then the running totals minus the minutes in
-- [from_minute, window start), which it subtracts itself. Times follow the data, not the
-- wall clock, so a replayed recording is served the same way as the live stream.
CREATE TABLE running_marks (
    family      text NOT NULL,
    lookback    interval NOT NULL,
    newest      timestamptz NOT NULL,
    from_minute timestamptz NOT NULL,
    PRIMARY KEY (family, lookback)
);

CREATE TABLE page_running (
    lookback      interval NOT NULL,
    wiki          text NOT NULL,
    title         text NOT NULL,
    events        bigint NOT NULL,
    bytes_added   bigint NOT NULL,
    bytes_removed bigint NOT NULL,
    PRIMARY KEY (lookback, wiki, title)
);
CREATE INDEX page_running_top_idx ON page_running (lookback, events DESC, wiki, title);

CREATE TABLE user_running (
    lookback      interval NOT NULL,
    "user"        text NOT NULL,
    events        bigint NOT NULL,
    edits         bigint NOT NULL,
    bot_events    bigint NOT NULL,
    bytes_added   bigint NOT NULL,
    bytes_removed bigint NOT NULL,
    PRIMARY KEY (lookback, "user")
);
CREATE INDEX user_running_top_idx ON user_running (lookback, events DESC, "user");

-- One function for both families. Arguments: family, running table, key columns (as SQL),
-- counters (comma-separated). Each statement's transition tables: `added`, `removed`.
CREATE FUNCTION keep_running() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    fam      constant text := TG_ARGV[0];
    running  constant text := TG_ARGV[1];
    keys     constant text := TG_ARGV[2];
    counters constant text[] := string_to_array(TG_ARGV[3], ',');
    cols     text;
    negated  text;
    sums     text;
    minus    text;
    adds     text;
    delta    text;
    upsert   text;
    seen     timestamptz;
    stop     timestamptz;
    m        record;
BEGIN
    PERFORM 1 FROM running_marks WHERE family = fam ORDER BY lookback FOR UPDATE;
    SELECT string_agg(format('%I', c), ', '), string_agg(format('-%I AS %I', c, c), ', '),
           string_agg(format('bigsum(%I)', c), ', '), string_agg(format('-bigsum(%I)', c), ', '),
           string_agg(format('%I = r.%I + EXCLUDED.%I', c, c, c), ', ')
      INTO cols, negated, sums, minus, adds
      FROM unnest(counters) AS c;
    upsert := format('INSERT INTO %I AS r (lookback, %s, %s) ', running, keys, cols);
    delta := CASE TG_OP
        WHEN 'INSERT' THEN format('SELECT window_start, %s, %s FROM added', keys, cols)
        WHEN 'DELETE' THEN format('SELECT window_start, %s, %s FROM removed', keys, negated)
        ELSE format('SELECT window_start, %s, %s FROM added UNION ALL '
                    'SELECT window_start, %s, %s FROM removed', keys, cols, keys, negated)
    END;
    IF TG_OP <> 'DELETE' THEN
        EXECUTE 'SELECT max(window_start) FROM added' INTO seen;
    END IF;
    -- A family that never saw a row has nothing to expire: its first rows count from where
    -- the lookback will start, not from the beginning of time (a bulk load stays cheap).
    EXECUTE upsert || format(
        'SELECT m.lookback, %s, %s FROM (%s) AS d JOIN running_marks AS m '
        'ON m.family = $1 AND d.window_start >= CASE WHEN m.newest = ''-infinity'' '
        'THEN greatest(m.newest, $2) + interval ''1 minute'' - m.lookback '
        'ELSE m.from_minute END GROUP BY m.lookback, %s '
        'ON CONFLICT (lookback, %s) DO UPDATE SET %s', keys, sums, delta, keys, keys, adds)
        USING fam, seen;
    FOR m IN SELECT lookback, from_minute, newest AS before, greatest(newest, seen) AS newest
             FROM running_marks WHERE family = fam ORDER BY lookback LOOP
        stop := m.newest + interval '1 minute' - m.lookback;
        IF stop > m.from_minute AND m.before <> '-infinity' THEN
            EXECUTE upsert || format(
                'SELECT $1, %s, %s FROM %I.%I WHERE window_start >= $2 AND window_start < $3 '
                'GROUP BY %s ON CONFLICT (lookback, %s) DO UPDATE SET %s',
                keys, minus, TG_TABLE_SCHEMA, TG_TABLE_NAME, keys, keys, adds)
                USING m.lookback, m.from_minute, stop;
        END IF;
        IF stop > m.from_minute THEN
            UPDATE running_marks SET newest = m.newest, from_minute = stop
             WHERE family = fam AND lookback = m.lookback;
        END IF;
        -- keys whose rows all left the lookback (or were deleted) go
        EXECUTE format('DELETE FROM %I WHERE lookback = $1 AND events = 0', running)
            USING m.lookback;
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER page_minute_running_inserted AFTER INSERT ON page_minute
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT
    EXECUTE FUNCTION keep_running('page', 'page_running', 'wiki, title',
                                  'events,bytes_added,bytes_removed');
CREATE TRIGGER page_minute_running_updated AFTER UPDATE ON page_minute
    REFERENCING OLD TABLE AS removed NEW TABLE AS added FOR EACH STATEMENT
    EXECUTE FUNCTION keep_running('page', 'page_running', 'wiki, title',
                                  'events,bytes_added,bytes_removed');
CREATE TRIGGER page_minute_running_deleted AFTER DELETE ON page_minute
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT
    EXECUTE FUNCTION keep_running('page', 'page_running', 'wiki, title',
                                  'events,bytes_added,bytes_removed');
CREATE TRIGGER user_minute_running_inserted AFTER INSERT ON user_minute
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT
    EXECUTE FUNCTION keep_running('user', 'user_running', '"user"',
                                  'events,edits,bot_events,bytes_added,bytes_removed');
CREATE TRIGGER user_minute_running_updated AFTER UPDATE ON user_minute
    REFERENCING OLD TABLE AS removed NEW TABLE AS added FOR EACH STATEMENT
    EXECUTE FUNCTION keep_running('user', 'user_running', '"user"',
                                  'events,edits,bot_events,bytes_added,bytes_removed');
CREATE TRIGGER user_minute_running_deleted AFTER DELETE ON user_minute
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT
    EXECUTE FUNCTION keep_running('user', 'user_running', '"user"',
                                  'events,edits,bot_events,bytes_added,bytes_removed');

-- The lookbacks kept (the dashboards' 15 min to 24 h; shorter ones are cheap as they are),
-- starting from what the minute tables already hold.
INSERT INTO running_marks (family, lookback, newest, from_minute)
SELECT f.family, l.lookback, coalesce(f.newest, '-infinity'),
       coalesce(f.newest + interval '1 minute' - l.lookback, '-infinity')
FROM (SELECT 'page' AS family, max(window_start) AS newest FROM page_minute
      UNION ALL SELECT 'user', max(window_start) FROM user_minute) AS f,
     (VALUES (interval '15 minutes'), (interval '30 minutes'), (interval '1 hour'),
             (interval '3 hours'), (interval '24 hours')) AS l(lookback);

INSERT INTO page_running (lookback, wiki, title, events, bytes_added, bytes_removed)
SELECT m.lookback, p.wiki, p.title, bigsum(p.events), bigsum(p.bytes_added),
       bigsum(p.bytes_removed)
FROM page_minute AS p JOIN running_marks AS m
  ON m.family = 'page' AND p.window_start >= m.from_minute
GROUP BY m.lookback, p.wiki, p.title;

INSERT INTO user_running (lookback, "user", events, edits, bot_events, bytes_added, bytes_removed)
SELECT m.lookback, u."user", bigsum(u.events), bigsum(u.edits), bigsum(u.bot_events),
       bigsum(u.bytes_added), bigsum(u.bytes_removed)
FROM user_minute AS u JOIN running_marks AS m
  ON m.family = 'user' AND u.window_start >= m.from_minute
GROUP BY m.lookback, u."user";
