// Configuration options owned by src/subscriber (merged into the single table in src/core/config.ts).
// The new-hosts-per-day limit and the public requestCrawl switch are declared by src/api
// (RELAY_NEW_HOSTS_PER_DAY_LIMIT, RELAY_DISABLE_REQUEST_CRAWL), which also persists their runtime
// changes; the subscriber reads them through that settings object.
import type { OptionSpec } from '../core/config.ts'

export const SUBSCRIBER_OPTIONS = [
  { key: 'trustedDomains', env: 'RELAY_TRUSTED_DOMAINS', kind: 'list', default: '*.host.bsky.network', group: 'Identity and hosts',
    doc: 'Hosts given the trusted account limit (10,000,000) and the trusted event rate limits (5,000/s, 50M/h, 500M/day). An entry is an exact hostname or `*.suffix`, which matches every name below the suffix (not the suffix itself).' },
  { key: 'defaultAccountLimit', env: 'RELAY_DEFAULT_ACCOUNT_LIMIT', kind: 'int', default: '100', min: 0, group: 'Identity and hosts',
    doc: 'Account limit of a newly admitted untrusted host. The host\'s event rate limits scale with it: 50 + limit/1000 per second, 2,500 + limit per hour, 20,000 + 10 × limit per day.' },
  { key: 'seedHosts', env: 'RELAY_SEED_HOSTS', kind: 'list', group: 'Identity and hosts',
    doc: 'Hosts admitted at startup as if an admin had requested a crawl of each (describeServer must answer; the daily limit does not apply). Known hosts are left as they are. Like every new host, they start at the live head.' },
  { key: 'seedRelay', env: 'RELAY_SEED_RELAY', kind: 'url', group: 'Identity and hosts',
    doc: 'Another relay (e.g. `https://relay1.us-east.bsky.network`) whose `com.atproto.sync.listHosts` is read at startup; its active hosts that this relay does not know yet are added (hostname rules and domain bans apply; no describeServer check) and start at the live head.' },
  { key: 'maxCursorAge', env: 'RELAY_MAX_CURSOR_AGE', kind: 'duration', default: '24h', min: 60_000, group: 'Identity and hosts',
    doc: 'A host whose saved cursor is older than this (time of the last event received from it) is resubscribed at its live head instead of replaying from the cursor: PDSs keep about a day of events, and replaying weeks of history from a host that was down would stall everything behind it. Counted in `relay_upstream_cursor_resets_total{reason="stale"}`.' },
  { key: 'upstreamMaxFrame', env: 'RELAY_UPSTREAM_MAX_FRAME', kind: 'bytes', default: '5MB', min: 1024, group: 'Identity and hosts',
    doc: 'Largest upstream frame processed (the spec\'s 5 MB limit). Larger frames up to `RELAY_UPSTREAM_HARD_FRAME_CAP` are dropped and counted (`reason="oversize"`) and the cursor moves past them, keeping the connection.' },
  { key: 'upstreamHardFrameCap', env: 'RELAY_UPSTREAM_HARD_FRAME_CAP', kind: 'bytes', default: '16MiB', min: 1024, group: 'Identity and hosts',
    doc: 'A frame beyond this closes the upstream connection (WebSocket close 1009); the host backs off and the error is recorded on the host row.' },
  { key: 'upstreamPingInterval', env: 'RELAY_UPSTREAM_PING_INTERVAL', kind: 'duration', default: '30s', min: 1000, group: 'Identity and hosts',
    doc: 'Upstream liveness: a ping is sent at this interval and a connection that answered neither with a pong nor with any frame for two intervals is terminated and redialled. Not applied while the relay itself is pausing the socket (backpressure or rate limit).' },
  { key: 'hostOfflineAfter', env: 'RELAY_HOST_OFFLINE_AFTER', kind: 'int', default: '15', min: 1, max: 1000, group: 'Identity and hosts',
    doc: 'Consecutive failed connections (dial errors, or connections that dropped before delivering anything for 30 s) after which a host is marked `offline` and retried only every `RELAY_HOST_OFFLINE_RETRY`. Retries before that back off exponentially from 1 s to 60 s with full jitter.' },
  { key: 'hostOfflineRetry', env: 'RELAY_HOST_OFFLINE_RETRY', kind: 'duration', default: '1h', min: 1000, group: 'Identity and hosts',
    doc: 'Retry interval (±10%) for an `offline` host. A requestCrawl for it reconnects at once.' },
  { key: 'hostIdleRetry', env: 'RELAY_HOST_IDLE_RETRY', kind: 'duration', default: '5m', min: 1000, group: 'Identity and hosts',
    doc: 'A host that answered our cursor with `FutureCursor` (its sequence went backwards, e.g. restored from a backup) is marked `idle` and resubscribed at its live head after this delay (indigo never retries such a host).' },
  { key: 'startupConnectWindow', env: 'RELAY_STARTUP_CONNECT_WINDOW', kind: 'duration', default: '30s', min: 0, group: 'Identity and hosts',
    doc: 'Startup connects are spread uniformly over this window (at most 20 ms per host), so thousands of hosts are not resolved and handshaken in the same second.' },
] as const satisfies readonly OptionSpec[]
