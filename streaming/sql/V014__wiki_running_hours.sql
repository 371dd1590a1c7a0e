-- 1-, 3- and 24-hour totals per wiki (and host) next to the seven-day ones of V010: the top
-- wikis, languages and projects and the active wikis of those lookbacks read about a thousand
-- rows instead of an hour of wiki_minute rows (54,000 in the benchmark's synthetic data) or a
-- day of wiki_hour and wiki_minute rows. The same triggers keep every lookback of the family.
INSERT INTO running_marks (family, lookback, newest, from_minute)
SELECT 'wiki', l.lookback, coalesce(newest, '-infinity'),
       coalesce(newest + interval '1 minute' - l.lookback, '-infinity')
FROM (SELECT max(window_start) AS newest FROM wiki_minute) AS w,
     (VALUES (interval '1 hour'), (interval '3 hours'), (interval '24 hours')) AS l(lookback);

INSERT INTO wiki_running (lookback, wiki, server_name, project, language, events, edits,
                          new_pages, bot_events, bytes_added, bytes_removed)
SELECT m.lookback, w.wiki, w.server_name, w.project, w.language, bigsum(w.events),
       bigsum(w.edits), bigsum(w.new_pages), bigsum(w.bot_events), bigsum(w.bytes_added),
       bigsum(w.bytes_removed)
FROM wiki_minute AS w JOIN running_marks AS m
  ON m.family = 'wiki' AND m.lookback < interval '7 days' AND w.window_start >= m.from_minute
GROUP BY m.lookback, w.wiki, w.server_name, w.project, w.language;

-- Filters by bot and namespace over whole hours (3 and 24 hours of human article edits): an
-- index-only scan of the hours' matching rows instead of every row of each hour. Only the
-- roll-up and the batch layer write activity_hour, so the wide index costs the stream nothing.
CREATE INDEX activity_hour_dims_idx ON activity_hour (namespace, is_bot, window_start)
    INCLUDE (wiki, type, is_minor, server_name, project, language, events, bytes_added,
             bytes_removed, net_bytes);
