-- Alerts fired by wiki_lib.alerts: the record of every incident, and the memory of the
-- cooldown (a restarted service reads here what it already said).
-- An incident is (rule, key, observed_at): the same observation never fires twice.
CREATE TABLE alerts (
    alert_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule        text NOT NULL,
    key         text NOT NULL,
    severity    text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    message     text NOT NULL,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb,
    observed_at timestamptz NOT NULL,
    fired_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (rule, key, observed_at)
);
CREATE INDEX alerts_fired_at_idx ON alerts (fired_at DESC);
CREATE INDEX alerts_rule_key_idx ON alerts (rule, key, fired_at DESC);
