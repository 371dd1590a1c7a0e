-- The serving layer: a dimensional activity table, hourly roll-ups, and the bookkeeping of
-- roll-ups, retention and batch recomputes. Extra tables only; the contract tables stay as
-- V001 made them.

-- Every event counted once per minute and combination of the dimensions dashboards filter
-- on (wiki, namespace, type, bot, minor), so filtered figures never need recent_changes.
-- The speed layer and the batch layer fill it with wiki_lib.stream.extra_metrics. wiki and
-- namespace may be NULL (events without them still count), hence NULLS NOT DISTINCT.
CREATE TABLE activity_minute (
    window_start  timestamptz NOT NULL,
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
    CONSTRAINT activity_minute_key
        UNIQUE NULLS NOT DISTINCT (window_start, wiki, namespace, type, is_bot, is_minor)
);
CREATE INDEX activity_minute_wiki_idx ON activity_minute (wiki, window_start);

-- Filters by wiki on the page table (copied to page_hour below) and on the event feed.
CREATE INDEX page_minute_wiki_idx ON page_minute (wiki, window_start);
CREATE INDEX recent_changes_wiki_idx ON recent_changes (wiki, event_time);

-- Hourly roll-ups: each has exactly its minute table's columns, window_start being the hour.
-- `wikipulse maintain` fills them from the minute rows (recomputing an hour replaces it);
-- page_hour and user_hour keep only the retention.top_k_per_hour busiest keys of each hour.
CREATE TABLE traffic_hour (LIKE traffic_minute INCLUDING ALL);
CREATE TABLE wiki_hour (LIKE wiki_minute INCLUDING ALL);
CREATE TABLE namespace_hour (LIKE namespace_minute INCLUDING ALL);
CREATE TABLE page_hour (LIKE page_minute INCLUDING ALL);
CREATE TABLE user_hour (LIKE user_minute INCLUDING ALL);
CREATE TABLE activity_hour (LIKE activity_minute INCLUDING ALL);
-- LIKE copied V001's (window_start) indexes, which the primary keys already cover; the top
-- lists look up a page's or a user's hours instead.
DROP INDEX page_hour_window_start_idx;
DROP INDEX user_hour_window_start_idx;
CREATE INDEX page_hour_page_idx ON page_hour (wiki, title, window_start);
CREATE INDEX user_hour_user_idx ON user_hour ("user", window_start);

-- What a truncated hour left out: every page (user) missing from page_hour (user_hour) had at
-- most this many events in that hour; 0 when the hour kept everything.
CREATE TABLE hour_cutoffs (
    window_start timestamptz PRIMARY KEY,
    page_cutoff  bigint NOT NULL DEFAULT 0,
    user_cutoff  bigint NOT NULL DEFAULT 0
);

-- Marks the query API reads: 'hours_rolled_until' (hourly tables are complete before it) and
-- 'kept_from.<table>' (retention deleted the rows before it).
CREATE TABLE serving_state (
    key text PRIMARY KEY,
    at  timestamptz NOT NULL
);

-- One row per recomputed day: what the batch layer found and replaced.
CREATE TABLE batch_runs (
    event_date  date PRIMARY KEY,
    run_at      timestamptz NOT NULL DEFAULT now(),
    lake_events bigint NOT NULL,
    late_events bigint NOT NULL,
    report      jsonb NOT NULL
);
