-- Replicas (store/protocols.py ReplicaStore): the processes sharing the record, leased on
-- PostgreSQL's clock, and who holds what.
CREATE TABLE replicas (
    id text PRIMARY KEY,
    name text NOT NULL,
    started_at timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL,
    lease_until timestamptz NOT NULL,
    fenced_at timestamptz,
    fenced_by text
);

-- Outbox channel leases: one deliverer per channel at a time across replicas.
CREATE TABLE outbox_channels (
    channel text PRIMARY KEY,
    owner text NOT NULL,
    until timestamptz NOT NULL
);

-- The shared admission: a guard check and its intent hold this row FOR UPDATE, so replicas
-- decide rate limits and the concurrency cap one at a time.
CREATE TABLE admission (id integer PRIMARY KEY);
INSERT INTO admission (id) VALUES (1);

-- The replica that claimed a run, a timer, an episode's dispatch, and that recorded an action.
ALTER TABLE runs ADD COLUMN owner text;
ALTER TABLE timers ADD COLUMN owner text;
ALTER TABLE episodes ADD COLUMN dispatch_owner text;
ALTER TABLE actions ADD COLUMN owner text;
CREATE INDEX actions_owner_open ON actions (owner) WHERE state = 'intent';
