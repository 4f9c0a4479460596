// The admin API's view of the running relay. The API owns the database side of every admin
// action (status columns, limits, bans, settings); everything that touches live state — upstream
// sockets, rate limiters, the sequencer, the replay buffer, worker caches — goes through this
// interface, which the integrator implements with the real subscriber, pool, sequencer and
// broadcaster. Tests use a recording fake.

/** Row of `/admin/consumers/list` (indigo's shape, snake_case as on the wire). */
export interface ConsumerInfo {
  id: number
  remote_addr: string
  user_agent: string
  events_consumed: number
  /** RFC 3339 */
  connected_at: string
}

/** A sliding-window event rate limit as indigo's `/admin/pds/list` reports it. */
export interface RateLimitInfo {
  /** events allowed per window; -1 when the host is not connected */
  max: number
  windowSeconds: number
}

/** Live per-host figures for `/admin/pds/list`; every field optional. */
export interface HostLiveStats {
  eventsSeenSinceStartup?: number
  perSecond?: RateLimitInfo
  perHour?: RateLimitInfo
  perDay?: RateLimitInfo
}

export interface RelayControl {
  /** Canonical hostnames with an open upstream subscription (`getUpstreamConns`). */
  connectedHosts(): string[]
  /**
   * Closes the subscription to a host and does not redial it until `connectHost` or a
   * requestCrawl (killUpstream, block, banDomain). Resolves false when it was not connected.
   */
  disconnectHost(hostname: string): Promise<boolean>
  /** Subscribes to a known host now, from its stored cursor (unblock). */
  connectHost(hostname: string): Promise<void>
  /**
   * Admin or public requestCrawl. `hostname` is the caller's input (it may carry a scheme, which
   * decides TLS); the implementation parses it, checks domain bans and the host, and throws an
   * XrpcError for anything the caller should see.
   */
  requestCrawl(hostname: string, opts: { admin: boolean }): Promise<void>
  /** Applies a changed account limit to the host's live rate limiter. */
  setHostLimits(hostname: string, accountLimit: number): Promise<void>
  /**
   * Persists and broadcasts a relay-originated `#account` event carrying the account's combined
   * status as it now stands in the database (see accountView in src/api/account-status.ts).
   */
  emitAccountStatus(did: string): Promise<void>
  /** Takedown: removes the account's events from replay (event log and in-memory ring). */
  hideAccountEvents(did: string): Promise<void>
  /** Makes workers and caches reload the account from the database. */
  invalidateAccount(did: string): Promise<void>
  /** Connected firehose consumers (`/admin/consumers/list`). */
  consumers(): ConsumerInfo[]
  /** Optional live figures for `/admin/pds/list`; absent fields are reported as unknown. */
  hostStats?(hostname: string): HostLiveStats | undefined
}
