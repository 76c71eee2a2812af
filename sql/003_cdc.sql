-- Heartbeats: a row updated every few seconds flows through CDC so each projection can tell
-- how fresh its store is, even when no user writes anything (and keeps the slot moving).
CREATE TABLE heartbeats (
    id      smallint    NOT NULL,
    beat_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT heartbeats_pkey PRIMARY KEY (id)
);
INSERT INTO heartbeats (id) VALUES (1);

-- Deletes must carry the old key: the default replica identity (the primary key) is enough,
-- and it keeps other columns (the password hash) out of the WAL's old-row image.
ALTER TABLE users REPLICA IDENTITY DEFAULT;
ALTER TABLE groups REPLICA IDENTITY DEFAULT;
ALTER TABLE group_memberships REPLICA IDENTITY DEFAULT;

-- Created here, as table owner, so the Debezium role needs no CREATE rights.
CREATE PUBLICATION campus_cdc FOR TABLE users, groups, group_memberships, heartbeats;
