-- Pre-aggregated Prometheus series, updated in the consumer transaction of the
-- event that changes them, so every replica exposes the same durable totals.
-- Labels that a metric does not have are '' (not NULL, so they can be keys).
CREATE TABLE kpi_counters (
    metric text NOT NULL,
    channel text NOT NULL DEFAULT '',
    location text NOT NULL DEFAULT '',
    touchpoint text NOT NULL DEFAULT '',
    severity text NOT NULL DEFAULT '',
    key text NOT NULL DEFAULT '',  -- score, NPS category, or a histogram bucket's upper bound / 'sum'
    value double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (metric, channel, location, touchpoint, severity, key)
);

-- Which raw location / touchpoint values get a label of their own. A value
-- keeps its label for ever once given one (a counter must never move from one
-- label to another); past the limit new values are folded into 'other'.
CREATE TABLE label_slots (
    dimension text NOT NULL,
    value text NOT NULL,
    label text NOT NULL,
    assigned_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dimension, value)
);

-- The latest known state of each alert (alert.raised.v1 / alert.updated.v1
-- snapshots; the newest `at` wins) plus what reporting has already counted.
CREATE TABLE alerts (
    alert_id text PRIMARY KEY,
    severity smallint NOT NULL,
    channel text NOT NULL,
    location text,
    touchpoint text,
    status text NOT NULL,
    raised_at timestamptz NOT NULL,
    acknowledged_at timestamptz,
    resolved_at timestamptz,
    sla_breached boolean NOT NULL DEFAULT false,
    sla_breached_at timestamptz,
    state_at timestamptz NOT NULL,
    ack_counted boolean NOT NULL DEFAULT false,
    resolve_counted boolean NOT NULL DEFAULT false,
    breach_counted boolean NOT NULL DEFAULT false
);
CREATE INDEX alerts_raised_at_idx ON alerts (raised_at);
CREATE INDEX alerts_open_idx ON alerts (severity) WHERE status <> 'resolved';
