-- Bookkeeping of the speed layer beyond the contract's columns.

ALTER TABLE pipeline_progress
    ADD COLUMN rows_invalid     bigint NOT NULL DEFAULT 0,
    ADD COLUMN canaries_dropped bigint NOT NULL DEFAULT 0,
    ADD COLUMN rows_input       bigint,
    ADD COLUMN input_rows_per_s double precision,
    ADD COLUMN processed_rows_per_s double precision,
    ADD COLUMN state_rows       bigint;

-- Raw messages the job could not parse: kept with the reason, never dropped silently.
CREATE TABLE quarantine (
    topic            text NOT NULL,
    source_partition integer NOT NULL,
    source_offset    bigint NOT NULL,
    kafka_timestamp  timestamptz,
    reason           text NOT NULL,
    raw_base64       text,
    query_name       text NOT NULL,
    batch_id         bigint NOT NULL,
    PRIMARY KEY (topic, source_partition, source_offset)
);

-- The latest Spark progress event of each streaming query, for `wikipulse stream status`.
CREATE TABLE stream_status (
    query_name  text PRIMARY KEY,
    run_id      text,
    batch_id    bigint,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    progress    jsonb NOT NULL
);
