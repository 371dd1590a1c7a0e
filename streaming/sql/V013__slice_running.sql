-- Per-slice totals: pages and users within one value of the filters that the contract's
-- page_minute and user_minute cannot carry, for the filters researchers use most: one
-- namespace by humans or by bots (pages and users), and one wiki (users). Without them such
-- an answer groups every matching event of recent_changes: 24 hours of human article edits
-- at live rate are about 500,000 events on as many pages (2 s here).
--
-- Each slice is a minute table that always equals an aggregate of recent_changes (a trigger
-- adds what a statement inserts and subtracts what it deletes, so the stream's upserts, the
-- batch layer's replace and retention all keep it), and running totals over it kept by
-- keep_running (V009) for 1, 3 and 24 hours. Rows count exactly what the query API's
-- fallback over recent_changes counts: pages over edits and creations with a wiki, title and
-- namespace; users over every event with a user (and, for namespaces, a namespace).
CREATE TABLE page_slice_minute (
    window_start  timestamptz NOT NULL,
    wiki          text NOT NULL,
    title         text NOT NULL,
    namespace     integer NOT NULL,
    is_bot        boolean NOT NULL,
    events        bigint NOT NULL,
    bytes_added   bigint NOT NULL,
    bytes_removed bigint NOT NULL,
    PRIMARY KEY (window_start, wiki, title, namespace, is_bot)
);

CREATE TABLE user_slice_minute (
    window_start  timestamptz NOT NULL,
    "user"        text NOT NULL,
    namespace     integer NOT NULL,
    is_bot        boolean NOT NULL,
    events        bigint NOT NULL,
    edits         bigint NOT NULL,
    bot_events    bigint NOT NULL,
    bytes_added   bigint NOT NULL,
    bytes_removed bigint NOT NULL,
    PRIMARY KEY (window_start, "user", namespace, is_bot)
);

CREATE TABLE user_wiki_minute (
    window_start  timestamptz NOT NULL,
    "user"        text NOT NULL,
    wiki          text NOT NULL,
    events        bigint NOT NULL,
    edits         bigint NOT NULL,
    bot_events    bigint NOT NULL,
    bytes_added   bigint NOT NULL,
    bytes_removed bigint NOT NULL,
    PRIMARY KEY (window_start, "user", wiki)
);

CREATE TABLE page_slice_running (
    lookback      interval NOT NULL,
    wiki          text NOT NULL,
    title         text NOT NULL,
    namespace     integer NOT NULL,
    is_bot        boolean NOT NULL,
    events        bigint NOT NULL,
    bytes_added   bigint NOT NULL,
    bytes_removed bigint NOT NULL,
    PRIMARY KEY (lookback, wiki, title, namespace, is_bot)
);
-- is_bot last: the planner folds `is_bot = false` into `NOT is_bot`, which does not make the
-- column a constant for ordering, so before the sort columns it would hide their order.
CREATE INDEX page_slice_running_top_idx
    ON page_slice_running (lookback, namespace, events DESC, wiki, title, is_bot);

CREATE TABLE user_slice_running (
    lookback      interval NOT NULL,
    "user"        text NOT NULL,
    namespace     integer NOT NULL,
    is_bot        boolean NOT NULL,
    events        bigint NOT NULL,
    edits         bigint NOT NULL,
    bot_events    bigint NOT NULL,
    bytes_added   bigint NOT NULL,
    bytes_removed bigint NOT NULL,
    PRIMARY KEY (lookback, "user", namespace, is_bot)
);
CREATE INDEX user_slice_running_top_idx
    ON user_slice_running (lookback, namespace, events DESC, "user", is_bot);

CREATE TABLE user_wiki_running (
    lookback      interval NOT NULL,
    "user"        text NOT NULL,
    wiki          text NOT NULL,
    events        bigint NOT NULL,
    edits         bigint NOT NULL,
    bot_events    bigint NOT NULL,
    bytes_added   bigint NOT NULL,
    bytes_removed bigint NOT NULL,
    PRIMARY KEY (lookback, "user", wiki)
);
CREATE INDEX user_wiki_running_top_idx ON user_wiki_running (lookback, wiki, events DESC, "user");
-- keep_running deletes the keys left with no events, per lookback; these top indexes do not
-- lead with events, so without these the delete would read every key of the lookback
CREATE INDEX page_slice_running_emptied_idx ON page_slice_running (lookback) WHERE events = 0;
CREATE INDEX user_slice_running_emptied_idx ON user_slice_running (lookback) WHERE events = 0;
CREATE INDEX user_wiki_running_emptied_idx ON user_wiki_running (lookback) WHERE events = 0;

-- The minute an event's time falls in, whatever the session's time zone.
CREATE FUNCTION event_minute(t timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT date_bin('1 minute', t, timestamptz '2000-01-01Z') $$;

-- The statements that add a signed set of recent_changes rows (`sign` +1 or -1 and the
-- table's columns, as SQL) to the slices. One text for the trigger and for the first fill.
CREATE FUNCTION slice_statements(delta text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    minute constant text := 'event_minute(event_time)';
    added constant text := 'bigsum(sign * greatest(length_delta, 0))';
    removed constant text := 'bigsum(sign * greatest(-length_delta, 0))';
    edits constant text := 'bigsum(CASE WHEN type IN (''edit'', ''new'') THEN sign ELSE 0 END)';
    bots constant text := 'bigsum(CASE WHEN is_bot THEN sign ELSE 0 END)';
    user_counters constant text := format('bigsum(sign), %s, %s, %s, %s',
                                          edits, bots, added, removed);
    user_changed constant text := format('(bigsum(sign), %s, %s, %s, %s) <> (0, 0, 0, 0, 0)',
                                         edits, bots, added, removed);
    user_sets constant text := 'events = t.events + EXCLUDED.events, '
        'edits = t.edits + EXCLUDED.edits, bot_events = t.bot_events + EXCLUDED.bot_events, '
        'bytes_added = t.bytes_added + EXCLUDED.bytes_added, '
        'bytes_removed = t.bytes_removed + EXCLUDED.bytes_removed';
BEGIN
    RETURN ARRAY[
        format('INSERT INTO page_slice_minute AS t SELECT %1$s, wiki, title, namespace, is_bot, '
               'bigsum(sign), %3$s, %4$s FROM (%2$s) AS d '
               'WHERE type IN (''edit'', ''new'') AND wiki IS NOT NULL AND title IS NOT NULL '
               'AND namespace IS NOT NULL GROUP BY 1, 2, 3, 4, 5 '
               'HAVING (bigsum(sign), %3$s, %4$s) <> (0, 0, 0) '
               'ON CONFLICT (window_start, wiki, title, namespace, is_bot) DO UPDATE SET '
               'events = t.events + EXCLUDED.events, '
               'bytes_added = t.bytes_added + EXCLUDED.bytes_added, '
               'bytes_removed = t.bytes_removed + EXCLUDED.bytes_removed',
               minute, delta, added, removed),
        format('INSERT INTO user_slice_minute AS t SELECT %s, "user", namespace, is_bot, %s '
               'FROM (%s) AS d WHERE "user" IS NOT NULL AND namespace IS NOT NULL '
               'GROUP BY 1, 2, 3, 4 HAVING %s '
               'ON CONFLICT (window_start, "user", namespace, is_bot) DO UPDATE SET %s',
               minute, user_counters, delta, user_changed, user_sets),
        format('INSERT INTO user_wiki_minute AS t SELECT %s, "user", wiki, %s '
               'FROM (%s) AS d WHERE "user" IS NOT NULL AND wiki IS NOT NULL '
               'GROUP BY 1, 2, 3 HAVING %s '
               'ON CONFLICT (window_start, "user", wiki) DO UPDATE SET %s',
               minute, user_counters, delta, user_changed, user_sets)
    ];
END
$$;

-- Keeps the slices equal to an aggregate of recent_changes, whoever writes it. The
-- transition tables are only visible here, so the statements run in this function.
CREATE FUNCTION keep_slices() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    statement text;
    slice text;
BEGIN
    FOREACH statement IN ARRAY slice_statements(CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT 1::bigint AS sign, * FROM added'
        WHEN 'DELETE' THEN 'SELECT -1::bigint AS sign, * FROM removed'
        ELSE 'SELECT 1::bigint AS sign, * FROM added UNION ALL '
             'SELECT -1::bigint AS sign, * FROM removed'
    END) LOOP
        EXECUTE statement;
    END LOOP;
    IF TG_OP <> 'INSERT' THEN
        -- rows whose events were all taken away go (their minutes come from `removed`)
        FOREACH slice IN ARRAY ARRAY['page_slice_minute', 'user_slice_minute',
                                     'user_wiki_minute'] LOOP
            EXECUTE format('DELETE FROM %I WHERE events = 0 AND window_start IN '
                           '(SELECT DISTINCT event_minute(event_time) FROM removed)', slice);
        END LOOP;
    END IF;
    RETURN NULL;
END
$$;

SELECT keep_running_on('page_slice_minute', 'page_slice', 'page_slice_running',
                       'wiki, title, namespace, is_bot', 'events,bytes_added,bytes_removed');
SELECT keep_running_on('user_slice_minute', 'user_slice', 'user_slice_running',
                       '"user", namespace, is_bot',
                       'events,edits,bot_events,bytes_added,bytes_removed');
SELECT keep_running_on('user_wiki_minute', 'user_wiki', 'user_wiki_running', '"user", wiki',
                       'events,edits,bot_events,bytes_added,bytes_removed');

-- Fewer lookbacks than page_running: every batch of the stream pays for each one in its
-- transaction, and windows under 50 minutes hold few enough events to group them.
INSERT INTO running_marks (family, lookback, newest, from_minute)
SELECT f.family, l.lookback, '-infinity', '-infinity'
FROM (VALUES ('page_slice'), ('user_slice'), ('user_wiki')) AS f(family),
     (VALUES (interval '1 hour'), (interval '3 hours'), (interval '24 hours')) AS l(lookback);

CREATE TRIGGER recent_changes_slices_inserted AFTER INSERT ON recent_changes
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION keep_slices();
CREATE TRIGGER recent_changes_slices_updated AFTER UPDATE ON recent_changes
    REFERENCING OLD TABLE AS removed NEW TABLE AS added FOR EACH STATEMENT
    EXECUTE FUNCTION keep_slices();
CREATE TRIGGER recent_changes_slices_deleted AFTER DELETE ON recent_changes
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION keep_slices();

-- What recent_changes already holds.
DO $$
DECLARE
    statement text;
BEGIN
    FOREACH statement IN ARRAY slice_statements('SELECT 1::bigint AS sign, * FROM recent_changes')
    LOOP
        EXECUTE statement;
    END LOOP;
END
$$;
