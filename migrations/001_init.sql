-- Initial schema: upstream hosts, domain bans, accounts with their repo state, the event log,
-- the collection index and persisted admin settings.

-- Upstream hosts (PDS instances) the relay subscribes to.
CREATE TABLE host (
  id             bigserial PRIMARY KEY,
  -- normalised: lower-case DNS name, no scheme; a port only for localhost:PORT
  hostname       text        NOT NULL UNIQUE,
  no_ssl         boolean     NOT NULL DEFAULT false,
  -- com.atproto.sync.defs#hostStatus
  status         text        NOT NULL DEFAULT 'active'
                 CHECK (status IN ('active', 'idle', 'offline', 'throttled', 'banned')),
  -- highest upstream seq below which every frame has been persisted; -1 = never (start live)
  last_seq       bigint      NOT NULL DEFAULT -1,
  account_count  bigint      NOT NULL DEFAULT 0,
  account_limit  bigint      NOT NULL,
  trusted        boolean     NOT NULL DEFAULT false,
  -- added by an operator through the admin API (may be localhost:PORT; dialled without SSRF checks)
  admin_added    boolean     NOT NULL DEFAULT false,
  failure_count  integer     NOT NULL DEFAULT 0,
  last_error     text,
  last_error_at  timestamptz,
  last_event_at  timestamptz,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE domain_ban (
  id         bigserial   PRIMARY KEY,
  domain     text        NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per account (DID) the relay has seen from its authoritative host.
CREATE TABLE account (
  uid             bigserial   PRIMARY KEY,
  did             text        NOT NULL UNIQUE,
  host_id         bigint      NOT NULL REFERENCES host (id),
  -- local status set by this relay: active | takendown | suspended | throttled
  status          text        NOT NULL DEFAULT 'active',
  -- status reported by the account's host (#account / getRepoStatus):
  -- active | deactivated | deleted | desynchronized | suspended | takendown | throttled | inactive
  upstream_status text        NOT NULL DEFAULT 'active',
  -- repo state after the last accepted #commit / #sync (NULL until the first one)
  rev             text,
  commit_cid      text,
  data_cid        text,
  -- strict chain mode: set on a chain break, cleared by a #sync that re-anchors the repo
  desynchronized  boolean     NOT NULL DEFAULT false,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX account_host_idx ON account (host_id, uid);
-- throttled accounts are released oldest first when a host's limit is raised
CREATE INDEX account_throttled_idx ON account (host_id, uid) WHERE status = 'throttled';

-- The outbound event log. `frame` is the complete outbound WebSocket message (header + body with
-- this seq), so replay sends stored bytes without decoding or re-encoding.
CREATE TABLE event (
  seq        bigint      PRIMARY KEY,
  did        text        NOT NULL,
  -- 1 commit, 2 sync, 3 identity, 4 account
  kind       smallint    NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  frame      bytea       NOT NULL
);
-- Retention prunes by time; created_at grows with seq, so a BRIN index is tiny and enough.
CREATE INDEX event_created_at_brin ON event USING brin (created_at);
-- Takedowns remove an account's events from replay.
CREATE INDEX event_did_idx ON event (did);

-- listReposByCollection: which repos have at least one record in a collection.
CREATE TABLE collection_repo (
  collection   text        NOT NULL,
  did          text        NOT NULL,
  record_count bigint      NOT NULL DEFAULT 0,
  first_seen   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (collection, did)
);
CREATE INDEX collection_repo_did_idx ON collection_repo (did);

-- Runtime settings changed through the admin API (persist across restarts).
CREATE TABLE relay_setting (
  key        text        PRIMARY KEY,
  value      jsonb       NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- New hosts admitted through the public requestCrawl, for the per-day limit (survives restarts).
CREATE TABLE host_admission (
  hostname    text        NOT NULL,
  admitted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX host_admission_time_idx ON host_admission (admitted_at);
