-- The last minute each user was active (at all, as a bot, as a human), kept by triggers on
-- user_minute, whoever writes it (the stream job, the batch layer, tests). Distinct users of
-- a window that reaches the newest minute are then "last seen since its start": an index range
-- count instead of a DISTINCT over every user_minute row of the window (24 hours: a million
-- rows). The query API uses it only when no user_minute row lies after the window, where the
-- two are equal, and counts from user_minute otherwise. Marks never move back: retention
-- deletes only rows older than a user's mark (and maintenance drops marks older than what it
-- keeps); the batch layer replaces a day's rows with a superset from the lake, which every
-- micro-batch writes before it commits its PostgreSQL rows.
CREATE TABLE user_last_seen (
    "user"     text PRIMARY KEY,
    last_any   timestamptz NOT NULL,
    last_bot   timestamptz,
    last_human timestamptz
);
CREATE INDEX user_last_seen_any_idx ON user_last_seen (last_any);
CREATE INDEX user_last_seen_bot_idx ON user_last_seen (last_bot);
CREATE INDEX user_last_seen_human_idx ON user_last_seen (last_human);

-- greatest() ignores NULLs, so a user's marks only move forward. The function runs with this
-- schema's search_path (FROM CURRENT: the migration's), whatever the writer's session has.
CREATE FUNCTION note_user_last_seen() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO user_last_seen AS s ("user", last_any, last_bot, last_human)
    SELECT "user", max(window_start),
           max(window_start) FILTER (WHERE bot_events > 0),
           max(window_start) FILTER (WHERE events > bot_events)
    FROM changed GROUP BY "user"
    ON CONFLICT ("user") DO UPDATE SET
        last_any = greatest(s.last_any, EXCLUDED.last_any),
        last_bot = greatest(s.last_bot, EXCLUDED.last_bot),
        last_human = greatest(s.last_human, EXCLUDED.last_human);
    RETURN NULL;
END
$$;

-- A transition table serves one event per trigger, hence two.
CREATE TRIGGER user_minute_inserted AFTER INSERT ON user_minute
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION note_user_last_seen();
CREATE TRIGGER user_minute_updated AFTER UPDATE ON user_minute
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION note_user_last_seen();

-- Users already in user_minute when this migration runs.
INSERT INTO user_last_seen ("user", last_any, last_bot, last_human)
SELECT "user", max(window_start),
       max(window_start) FILTER (WHERE bot_events > 0),
       max(window_start) FILTER (WHERE events > bot_events)
FROM user_minute GROUP BY "user";
