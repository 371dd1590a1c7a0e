-- Pipeline runs launched from a notebook or the library (wiki_lib.analysis.runs): what was
-- asked for, where its data went, and what came out, so a later evaluation can find it all.
CREATE TABLE runs (
    run_id           text PRIMARY KEY,
    started_at       timestamptz NOT NULL,
    finished_at      timestamptz,
    status           text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    parameters       jsonb NOT NULL,
    source           text NOT NULL,
    topic            text NOT NULL,
    topic_dlq        text NOT NULL,
    schema_name      text NOT NULL,
    query_name       text NOT NULL,
    lake_path        text NOT NULL,
    events_produced  bigint,
    dead_letters     bigint,
    canaries         bigint,
    rows_read        bigint,
    rows_written     bigint,
    rows_late        bigint,
    duplicates       bigint,
    batches          integer,
    produce_seconds  double precision,
    total_seconds    double precision,
    error            text
);

-- What the run's monitor saw every few seconds: Kafka's end offsets against the offsets the
-- stream job had processed (the consumer lag), and how far the producer had got.
CREATE TABLE run_samples (
    run_id          text NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    sampled_at      timestamptz NOT NULL,
    produced        bigint NOT NULL,
    end_offsets     bigint NOT NULL,
    processed       bigint NOT NULL,
    lag             bigint NOT NULL,
    batches         integer NOT NULL,
    PRIMARY KEY (run_id, sampled_at)
);
