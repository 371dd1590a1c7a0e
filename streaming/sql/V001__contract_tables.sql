-- The serving contract (shared/spec/metrics.md, section 3).
-- Unqualified names: the migration runner sets search_path to the target schema.
-- Counters are bigint and NOT NULL; the stream job upserts whole rows per key.

CREATE TABLE traffic_minute (
    window_start      timestamptz PRIMARY KEY,
    events            bigint NOT NULL,
    edits             bigint NOT NULL,
    new_pages         bigint NOT NULL,
    log_events        bigint NOT NULL,
    categorize_events bigint NOT NULL,
    other_events      bigint NOT NULL,
    bot_events        bigint NOT NULL,
    human_events      bigint NOT NULL,
    minor_edits       bigint NOT NULL,
    major_edits       bigint NOT NULL,
    bytes_added       bigint NOT NULL,
    bytes_removed     bigint NOT NULL,
    net_bytes         bigint NOT NULL
);

CREATE TABLE wiki_minute (
    window_start  timestamptz NOT NULL,
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
    PRIMARY KEY (window_start, wiki)
);

CREATE TABLE namespace_minute (
    window_start timestamptz NOT NULL,
    namespace    integer NOT NULL,
    events       bigint NOT NULL,
    PRIMARY KEY (window_start, namespace)
);

CREATE TABLE page_minute (
    window_start  timestamptz NOT NULL,
    wiki          text NOT NULL,
    title         text NOT NULL,
    events        bigint NOT NULL,
    bytes_added   bigint NOT NULL,
    bytes_removed bigint NOT NULL,
    PRIMARY KEY (window_start, wiki, title)
);

CREATE TABLE user_minute (
    window_start  timestamptz NOT NULL,
    "user"        text NOT NULL,
    events        bigint NOT NULL,
    edits         bigint NOT NULL,
    bot_events    bigint NOT NULL,
    bytes_added   bigint NOT NULL,
    bytes_removed bigint NOT NULL,
    PRIMARY KEY (window_start, "user")
);

CREATE TABLE recent_changes (
    event_id     text PRIMARY KEY,
    event_time   timestamptz NOT NULL,
    wiki         text,
    server_name  text,
    type         text NOT NULL,
    namespace    integer,
    title        text,
    "user"       text,
    is_bot       boolean NOT NULL,
    is_minor     boolean NOT NULL,
    length_delta bigint NOT NULL,
    comment      text
);
CREATE INDEX recent_changes_event_time_idx ON recent_changes (event_time DESC);

CREATE TABLE pipeline_progress (
    query_name         text NOT NULL,
    batch_id           bigint NOT NULL,
    committed_at       timestamptz NOT NULL DEFAULT now(),
    rows_read          bigint NOT NULL,
    rows_written       bigint NOT NULL,
    rows_late          bigint NOT NULL,
    duplicates_dropped bigint NOT NULL,
    watermark          timestamptz,
    max_event_time     timestamptz,
    processing_ms      bigint NOT NULL,
    PRIMARY KEY (query_name, batch_id)
);

CREATE INDEX wiki_minute_wiki_idx ON wiki_minute (wiki, window_start);
CREATE INDEX page_minute_window_idx ON page_minute (window_start);
CREATE INDEX user_minute_window_idx ON user_minute (window_start);
