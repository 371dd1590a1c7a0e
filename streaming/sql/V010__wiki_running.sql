-- Seven-day totals per wiki (and host), kept like page_running and user_running (V009), for
-- the week-long top wikis, languages and projects and the week's active wikis: about a
-- thousand rows instead of the 126,000 wiki_hour rows of a week. server_name and language may
-- be NULL, so the key treats NULLs as equal.
CREATE TABLE wiki_running (
    lookback      interval NOT NULL,
    wiki          text NOT NULL,
    server_name   text,
    project       text NOT NULL,
    language      text,
    events        bigint NOT NULL,
    edits         bigint NOT NULL,
    new_pages     bigint NOT NULL,
    bot_events    bigint NOT NULL,
    bytes_added   bigint NOT NULL,
    bytes_removed bigint NOT NULL,
    CONSTRAINT wiki_running_key
        UNIQUE NULLS NOT DISTINCT (lookback, wiki, server_name, project, language)
);
CREATE INDEX wiki_running_top_idx ON wiki_running (lookback, events DESC, wiki);

CREATE TRIGGER wiki_minute_running_inserted AFTER INSERT ON wiki_minute
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT
    EXECUTE FUNCTION keep_running('wiki', 'wiki_running', 'wiki, server_name, project, language',
                                  'events,edits,new_pages,bot_events,bytes_added,bytes_removed');
CREATE TRIGGER wiki_minute_running_updated AFTER UPDATE ON wiki_minute
    REFERENCING OLD TABLE AS removed NEW TABLE AS added FOR EACH STATEMENT
    EXECUTE FUNCTION keep_running('wiki', 'wiki_running', 'wiki, server_name, project, language',
                                  'events,edits,new_pages,bot_events,bytes_added,bytes_removed');
CREATE TRIGGER wiki_minute_running_deleted AFTER DELETE ON wiki_minute
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT
    EXECUTE FUNCTION keep_running('wiki', 'wiki_running', 'wiki, server_name, project, language',
                                  'events,edits,new_pages,bot_events,bytes_added,bytes_removed');

INSERT INTO running_marks (family, lookback, newest, from_minute)
SELECT 'wiki', interval '7 days', coalesce(newest, '-infinity'),
       coalesce(newest + interval '1 minute' - interval '7 days', '-infinity')
FROM (SELECT max(window_start) AS newest FROM wiki_minute) AS w;

INSERT INTO wiki_running (lookback, wiki, server_name, project, language, events, edits,
                          new_pages, bot_events, bytes_added, bytes_removed)
SELECT m.lookback, w.wiki, w.server_name, w.project, w.language, bigsum(w.events),
       bigsum(w.edits), bigsum(w.new_pages), bigsum(w.bot_events), bigsum(w.bytes_added),
       bigsum(w.bytes_removed)
FROM wiki_minute AS w JOIN running_marks AS m
  ON m.family = 'wiki' AND w.window_start >= m.from_minute
GROUP BY m.lookback, w.wiki, w.server_name, w.project, w.language;
