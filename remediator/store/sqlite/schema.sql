-- The decision record (SQLite). Timestamps are ISO 8601 UTC text; JSON columns are text.
-- Notifications as digested from the intake journal (store/journal.py), in journal order.
CREATE TABLE IF NOT EXISTS notifications (
    id TEXT PRIMARY KEY,
    received_at TEXT NOT NULL,
    group_key TEXT NOT NULL,
    receiver TEXT NOT NULL,
    status TEXT NOT NULL,
    alerts INTEGER NOT NULL,
    truncated_alerts INTEGER NOT NULL,
    new_episodes INTEGER NOT NULL,
    digested_at TEXT NOT NULL,
    body BLOB NOT NULL  -- the raw request body, zlib-compressed
);
CREATE INDEX IF NOT EXISTS notifications_received ON notifications (received_at);

-- How far the intake journal is digested: written in the same transaction as the episodes.
CREATE TABLE IF NOT EXISTS digest_state (
    name TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
);
INSERT OR IGNORE INTO digest_state (name, seq) VALUES ('journal', 0);

CREATE TABLE IF NOT EXISTS episodes (
    id TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    alertname TEXT NOT NULL,
    namespace TEXT,
    status TEXT NOT NULL,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    generator_url TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    resolved_at TEXT,
    -- Sightings, counted at most once a minute (re-sends within a minute only answer 2xx).
    notifications INTEGER NOT NULL DEFAULT 1,
    truncated INTEGER NOT NULL DEFAULT 0,
    first_notification TEXT NOT NULL,
    -- 1: decided on arrival that no playbook handles it, so its resolve needs no dispatch either
    no_work INTEGER NOT NULL DEFAULT 0,
    -- NULL until the dispatcher has finished with the firing / the resolution.
    firing_handled_at TEXT,
    resolved_handled_at TEXT
);
CREATE INDEX IF NOT EXISTS episodes_pending_firing ON episodes (id)
    WHERE firing_handled_at IS NULL AND status = 'firing';
CREATE INDEX IF NOT EXISTS episodes_pending_resolved ON episodes (id)
    WHERE resolved_handled_at IS NULL AND status = 'resolved';

CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    episode_id TEXT NOT NULL,
    playbook TEXT NOT NULL,
    target_key TEXT NOT NULL,
    mode TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    error TEXT,
    evidence TEXT NOT NULL DEFAULT '{}',
    escalation TEXT,
    -- The claim: one run per episode and playbook, whatever re-sends or replicas do.
    UNIQUE (episode_id, playbook)
);
CREATE INDEX IF NOT EXISTS runs_target ON runs (target_key, started_at);
CREATE INDEX IF NOT EXISTS runs_playbook ON runs (playbook, started_at);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at);

CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY,
    episode_id TEXT NOT NULL,
    playbook TEXT,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL,
    run_id INTEGER
);
CREATE INDEX IF NOT EXISTS decisions_episode ON decisions (episode_id);

CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    episode_id TEXT NOT NULL,
    verb TEXT NOT NULL,
    resource TEXT NOT NULL,
    object TEXT NOT NULL,
    summary TEXT NOT NULL,
    body TEXT NOT NULL,
    change TEXT NOT NULL,
    state TEXT NOT NULL,
    intended_at TEXT NOT NULL,
    finished_at TEXT,
    result TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS actions_episode ON actions (episode_id);
CREATE INDEX IF NOT EXISTS actions_open ON actions (state) WHERE state = 'intent';

CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    episode_id TEXT NOT NULL,
    at TEXT NOT NULL,
    verb TEXT NOT NULL,
    resource TEXT NOT NULL,
    object TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_episode ON calls (episode_id);

CREATE TABLE IF NOT EXISTS escalations (
    id INTEGER PRIMARY KEY,
    episode_id TEXT NOT NULL,
    run_id INTEGER,
    reason TEXT NOT NULL,
    details TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS escalations_episode ON escalations (episode_id);

CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    episode_id TEXT,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    delivered_at TEXT,
    last_error TEXT,
    dead_at TEXT  -- dead-lettered (refused for good, or unrenderable) until re-sent
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (channel, next_attempt_at, id)
    WHERE delivered_at IS NULL;

-- Durable timers: verification after a bake time, approval time-outs, reverts after a
-- cool-down. A timer with due_at NULL waits for its episode to resolve (see arm_timers).
CREATE TABLE IF NOT EXISTS timers (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    episode_id TEXT NOT NULL,
    run_id INTEGER,
    playbook TEXT,
    delay_seconds REAL NOT NULL DEFAULT 0,
    due_at TEXT,
    state TEXT NOT NULL DEFAULT 'waiting',
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS timers_due ON timers (due_at) WHERE state = 'waiting';
CREATE INDEX IF NOT EXISTS timers_episode ON timers (episode_id);

-- Governance (engine/guards, engine/governance.py): all of it survives restarts.
-- Kill switches: scope global (key ''), playbook (key = name) or target (key = Kind/ns/name).
CREATE TABLE IF NOT EXISTS kill_switches (
    id INTEGER PRIMARY KEY,
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    reason TEXT NOT NULL,
    who TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    lifted_at TEXT,
    lifted_by TEXT
);
CREATE INDEX IF NOT EXISTS kill_switches_live ON kill_switches (scope, key) WHERE lifted_at IS NULL;

-- The storm breaker: at most one row with closed_at NULL (opening checks in the same write).
CREATE TABLE IF NOT EXISTS breaker (
    id INTEGER PRIMARY KEY,
    opened_at TEXT NOT NULL,
    reason TEXT NOT NULL,
    details TEXT NOT NULL,
    expires_at TEXT,
    closed_at TEXT,
    closed_by TEXT,
    close_reason TEXT
);

-- Approve mode: one pending approval per run, decided once.
CREATE TABLE IF NOT EXISTS approvals (
    run_id INTEGER PRIMARY KEY,
    episode_id TEXT NOT NULL,
    playbook TEXT NOT NULL,
    target_key TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    state TEXT NOT NULL,
    decided_at TEXT,
    decided_by TEXT,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS approvals_pending ON approvals (expires_at) WHERE state = 'pending';

CREATE TABLE IF NOT EXISTS verifications (
    id INTEGER PRIMARY KEY,
    episode_id TEXT NOT NULL,
    run_id INTEGER NOT NULL,
    playbook TEXT NOT NULL,
    target_key TEXT NOT NULL,
    query TEXT NOT NULL,
    result TEXT NOT NULL,
    detail TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS verifications_episode ON verifications (episode_id);
CREATE INDEX IF NOT EXISTS verifications_at ON verifications (at);

-- Rate limits read real actions by time (see GovernanceSQL.acting_runs). SQLite uses a partial
-- index only when the query repeats its condition, so this is `_REAL` in sqlite_governance.py,
-- word for word (tests/governance/test_ratelimit.py checks the plan).
DROP INDEX IF EXISTS actions_intended;
CREATE INDEX IF NOT EXISTS actions_real ON actions (intended_at)
    WHERE state IN ('intent', 'succeeded', 'failed', 'interrupted');
-- Start-up reconciliation looks for a run's real actions.
CREATE INDEX IF NOT EXISTS actions_run ON actions (run_id);

CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    reason TEXT NOT NULL,
    details TEXT NOT NULL
);

-- Reports (engine/report.py): the Slack thread of each episode, so replies after a restart
-- still go in it.
CREATE TABLE IF NOT EXISTS report_threads (
    episode_id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    ts TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- Operator overrides of a playbook's mode (admin API); they win over the configuration.
CREATE TABLE IF NOT EXISTS playbook_modes (
    playbook TEXT PRIMARY KEY,
    mode TEXT NOT NULL,
    who TEXT NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL
);

-- Slack approvals (engine/slack_approvals.py). Every signed button click is recorded before it
-- is answered, with a timer that processes it (so a crash after the answer loses nothing); its
-- signature is unique, so an exact replay of a request is refused.
CREATE TABLE IF NOT EXISTS slack_clicks (
    signature TEXT PRIMARY KEY,
    received_at TEXT NOT NULL,
    user_id TEXT NOT NULL,
    action TEXT NOT NULL,
    run_id INTEGER,
    timer_id INTEGER NOT NULL
);

-- The Slack message carrying a run's Approve/Deny buttons, so that a decision taken anywhere
-- (a click, the admin API, the timeout) replaces them.
CREATE TABLE IF NOT EXISTS approval_messages (
    run_id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    ts TEXT NOT NULL,
    posted_at TEXT NOT NULL
);

-- "Run now" from Slack on a shadow run's report: at most once per shadow run.
CREATE TABLE IF NOT EXISTS run_now (
    run_id INTEGER PRIMARY KEY,
    episode_id TEXT NOT NULL,
    who TEXT NOT NULL,
    at TEXT NOT NULL
);

-- Incidents (engine/incidents.py): the trouble of one target across alert episodes, keyed by
-- (playbook, target). At most one not closed per key. `held`: escalated; later alerts for the
-- target join it and act on nothing until an operator clears it or it is quiet long enough.
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY,
    playbook TEXT NOT NULL,
    target_key TEXT NOT NULL,
    state TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    held_at TEXT,
    held_reason TEXT,
    closed_at TEXT,
    closed_by TEXT,
    close_reason TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS incidents_live ON incidents (playbook, target_key)
    WHERE state != 'closed';
-- The episodes (and their runs, when one ran) an incident spans.
CREATE TABLE IF NOT EXISTS incident_episodes (
    incident_id INTEGER NOT NULL,
    episode_id TEXT NOT NULL,
    run_id INTEGER,
    joined_at TEXT NOT NULL,
    how TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incident_episodes_incident ON incident_episodes (incident_id);
CREATE INDEX IF NOT EXISTS incident_episodes_run ON incident_episodes (run_id);

-- The storm picture (engine/storm_watch.py): every firing alert that arrived with a playbook
-- for it, by target, when it was digested, so storms are decided on everything that arrived;
-- `held_by` is the breaker that held it instead of dispatching it (its list of alerts).
CREATE TABLE IF NOT EXISTS storm_sightings (
    episode_id TEXT PRIMARY KEY,
    target_key TEXT NOT NULL,
    namespace TEXT,
    playbook TEXT,
    alertname TEXT NOT NULL,
    at TEXT NOT NULL,
    refused TEXT,
    held_by INTEGER
);
CREATE INDEX IF NOT EXISTS storm_sightings_at ON storm_sightings (at);
CREATE INDEX IF NOT EXISTS storm_sightings_held ON storm_sightings (held_by)
    WHERE held_by IS NOT NULL;
-- Summaries of aggregated escalations read the recent ones (engine/escalation_policy.py).
CREATE INDEX IF NOT EXISTS escalations_created ON escalations (created_at);

-- Replicas (store/protocols.py ReplicaStore): the processes sharing the record, with their
-- leases on the store's clock. SQLite has one process, so it is the only live replica; the
-- rows keep the code path of a shared store real (fencing in record_intent).
CREATE TABLE IF NOT EXISTS replicas (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    started_at TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    lease_until TEXT NOT NULL,
    fenced_at TEXT,
    fenced_by TEXT
);
-- Outbox channel leases: one deliverer per channel at a time across replicas.
CREATE TABLE IF NOT EXISTS outbox_channels (
    channel TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until TEXT NOT NULL
);
