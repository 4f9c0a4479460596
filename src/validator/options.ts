// Configuration options owned by src/validator (merged into the single table in src/core/config.ts).
// Caches and pools below are per validation worker (one per shard).
import type { OptionSpec } from '../core/config.ts'

export const VALIDATOR_OPTIONS = [
  { key: 'strictChain', env: 'RELAY_STRICT_CHAIN', kind: 'bool', default: 'false', group: 'Validation',
    doc: 'Drop `#commit` events whose `since`/`prevData` do not continue the stored repo state (and commits without `prevData` once state exists), and mark the account desynchronized until a `#sync` re-anchors it. By default such chain breaks pass through and are only counted (`relay_chain_breaks_total`), as the sync 1.1 spec asks of relays.' },
  { key: 'validatorDidConcurrency', env: 'RELAY_VALIDATOR_DID_CONCURRENCY', kind: 'int', default: '32', min: 1, max: 1024, group: 'Validation',
    doc: 'DIDs a validation worker processes concurrently within one batch (each DID\'s events stay strictly in order). Bounds the identity resolutions and database lookups one worker waits on at once.' },
  { key: 'validatorDbPoolSize', env: 'RELAY_VALIDATOR_DB_POOL_SIZE', kind: 'int', default: '3', min: 1, max: 16, group: 'Validation',
    doc: 'Postgres connections per validation worker (account lookups, account creation, status updates).' },
  { key: 'accountCacheSize', env: 'RELAY_ACCOUNT_CACHE_SIZE', kind: 'int', default: '100000', min: 100, group: 'Validation',
    doc: 'Accounts (status and repo state) cached per validation worker. A miss costs one Postgres query.' },
  { key: 'identityCacheSize', env: 'RELAY_IDENTITY_CACHE_SIZE', kind: 'int', default: '100000', min: 100, group: 'Identity and hosts',
    doc: 'Resolved DID documents (with their parsed signing key) cached per validation worker.' },
  { key: 'identityCacheTtl', env: 'RELAY_IDENTITY_CACHE_TTL', kind: 'duration', default: '1h', min: 1000, group: 'Identity and hosts',
    doc: 'How long a resolved DID document is trusted. `#identity` events, signature failures and host mismatches refresh an entry earlier.' },
  { key: 'identityNegativeTtl', env: 'RELAY_IDENTITY_NEGATIVE_TTL', kind: 'duration', default: '60s', min: 0, group: 'Identity and hosts',
    doc: 'How long a failed resolution (DID not found / tombstoned, or a network error) is remembered before the DID is tried again; events of that DID are dropped as `resolve_failed` meanwhile.' },
  { key: 'identityRefreshInterval', env: 'RELAY_IDENTITY_REFRESH_INTERVAL', kind: 'duration', default: '60s', min: 0, group: 'Identity and hosts',
    doc: 'Minimum time between two forced re-resolutions of one DID (after a signature failure or an event from an unexpected host), so a misbehaving host cannot turn its events into directory traffic.' },
  { key: 'resolveTimeout', env: 'RELAY_RESOLVE_TIMEOUT', kind: 'duration', default: '5s', min: 100, group: 'Identity and hosts',
    doc: 'Timeout of one DID document fetch (PLC directory or did:web) and of one `getRepoStatus` call.' },
  { key: 'resolveConcurrency', env: 'RELAY_RESOLVE_CONCURRENCY', kind: 'int', default: '16', min: 1, max: 1024, group: 'Identity and hosts',
    doc: 'DID document fetches in flight per validation worker; further resolutions queue.' },
  { key: 'repoStatusRecheck', env: 'RELAY_REPO_STATUS_RECHECK', kind: 'duration', default: '60s', min: 0, group: 'Identity and hosts',
    doc: 'Events of an account its host reported inactive are dropped, but first the host is asked again (`com.atproto.sync.getRepoStatus`), at most once per this interval per account; the interval doubles while the answer stays inactive (up to 1h).' },
] as const satisfies readonly OptionSpec[]
