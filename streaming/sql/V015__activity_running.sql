-- 1-, 3- and 24-hour totals per combination of activity_minute's dimensions, kept by
-- keep_running (V009) as the wiki totals are. A filtered aggregate over those lookbacks (the
-- KPIs, actions, namespaces, top wikis, languages and projects of human article edits, say)
-- then reads the matching kept totals, a few thousand rows, instead of every matching minute
-- and hour row of the window: 24 hours of human article edits are about 19,000 activity rows
-- in the benchmark's synthetic data, half of them minutes spread over thousands of pages.
-- Series stay on the minute and hour rows: they need the time.
CREATE TABLE activity_running (
    lookback      interval NOT NULL,
    wiki          text,
    namespace     integer,
    type          text NOT NULL,
    is_bot        boolean NOT NULL,
    is_minor      boolean NOT NULL,
    server_name   text,
    project       text NOT NULL,
    language      text,
    events        bigint NOT NULL,
    bytes_added   bigint NOT NULL,
    bytes_removed bigint NOT NULL,
    net_bytes     bigint NOT NULL,
    CONSTRAINT activity_running_key UNIQUE NULLS NOT DISTINCT
        (lookback, wiki, namespace, type, is_bot, is_minor, server_name, project, language)
);
-- the filters researchers use most (one namespace, bots or humans); a wiki's rows are a prefix
-- of the key's index
CREATE INDEX activity_running_dims_idx ON activity_running (lookback, namespace, is_bot);
-- keep_running deletes the keys left with no events, per lookback
CREATE INDEX activity_running_emptied_idx ON activity_running (lookback) WHERE events = 0;

SELECT keep_running_on('activity_minute', 'activity', 'activity_running',
                       'wiki, namespace, type, is_bot, is_minor, server_name, project, language',
                       'events,bytes_added,bytes_removed,net_bytes');

INSERT INTO running_marks (family, lookback, newest, from_minute)
SELECT 'activity', l.lookback, coalesce(newest, '-infinity'),
       coalesce(newest + interval '1 minute' - l.lookback, '-infinity')
FROM (SELECT max(window_start) AS newest FROM activity_minute) AS a,
     (VALUES (interval '1 hour'), (interval '3 hours'), (interval '24 hours')) AS l(lookback);

INSERT INTO activity_running (lookback, wiki, namespace, type, is_bot, is_minor, server_name,
                              project, language, events, bytes_added, bytes_removed, net_bytes)
SELECT m.lookback, a.wiki, a.namespace, a.type, a.is_bot, a.is_minor, a.server_name, a.project,
       a.language, bigsum(a.events), bigsum(a.bytes_added), bigsum(a.bytes_removed),
       bigsum(a.net_bytes)
FROM activity_minute AS a JOIN running_marks AS m
  ON m.family = 'activity' AND a.window_start >= m.from_minute
GROUP BY m.lookback, a.wiki, a.namespace, a.type, a.is_bot, a.is_minor, a.server_name,
         a.project, a.language;
