// Reconnect policy for one upstream host. Pure state machine: the subscriber reports what
// happened, the policy answers when (and whether) to dial again. Randomness is injected.
//
// Differences from indigo's slurper, on purpose:
// - a connection that is accepted and then dropped without delivering anything counts as a
//   failure (indigo redials such a host in a tight loop, since it only backs off dial errors);
// - the exponential part is in milliseconds (indigo's `b*2` is nanoseconds, so its early sleeps
//   are all < 1 s), with full jitter so thousands of hosts that fail together don't retry together;
// - "offline" is not terminal: the host is retried rarely (hourly by default) instead of waiting
//   for someone to call requestCrawl;
// - a host that kicks us because *we* paused its socket (ConsumerTooSlow during our own
//   backpressure) is reconnected without counting toward offline — the fault was ours.

export interface BackoffPolicy {
  /** first retry delay ceiling */
  baseMs: number
  /** maximum retry delay ceiling while still "connecting" */
  capMs: number
  /** consecutive failures after which the host is reported offline */
  offlineAfter: number
  /** retry interval once offline (jittered ±10%) */
  offlineRetryMs: number
  /** a connection must stay up this long ... */
  healthyUptimeMs: number
  /** ... and deliver at least this many events to reset the failure count */
  healthyEvents: number
  /** delay ceiling after a ConsumerTooSlow kick (its own small exponential, not counted) */
  kickBaseMs: number
}

export const DEFAULT_BACKOFF: Readonly<BackoffPolicy> = {
  baseMs: 1_000,
  capMs: 60_000,
  offlineAfter: 15,
  offlineRetryMs: 3_600_000,
  healthyUptimeMs: 30_000,
  healthyEvents: 1,
  kickBaseMs: 250,
}

export type DisconnectKind =
  /** dial / TLS / handshake failed, or HTTP error on upgrade */
  | 'dial-failed'
  /** the connection opened and later closed or errored (incl. ping timeout, framing error) */
  | 'dropped'
  /** upstream sent ConsumerTooSlow (or closed) while our socket was paused by our backpressure */
  | 'kicked-while-paused'

export type ReconnectDecision =
  | { action: 'retry'; delayMs: number; failures: number }
  /** consecutive failures reached `offlineAfter`: mark the host offline, try again after delayMs */
  | { action: 'offline'; delayMs: number; failures: number }

export class ReconnectBackoff {
  readonly policy: BackoffPolicy
  private readonly random: () => number
  private failures = 0
  private kicks = 0
  private connectedAt: number | null = null
  private events = 0

  constructor(policy: Partial<BackoffPolicy> = {}, random: () => number = Math.random) {
    this.policy = { ...DEFAULT_BACKOFF, ...policy }
    if (this.policy.baseMs <= 0 || this.policy.capMs < this.policy.baseMs) throw new RangeError('invalid backoff base/cap')
    if (!(this.policy.offlineAfter >= 1)) throw new RangeError('offlineAfter must be >= 1')
    this.random = random
  }

  /** Consecutive failures so far (for the host row / metrics). */
  get consecutiveFailures(): number {
    return this.failures
  }

  get isOffline(): boolean {
    return this.failures >= this.policy.offlineAfter
  }

  /** The WebSocket opened (upgrade succeeded). */
  onConnected(now: number): void {
    this.connectedAt = now
    this.events = 0
  }

  /** An event was accepted from the current connection (call cheaply, per frame). */
  onEvent(): void {
    this.events++
  }

  /** Forget all failures (admin requestCrawl revives an offline host). */
  reset(): void {
    this.failures = 0
    this.kicks = 0
  }

  /** The connection ended (or never started); what next? */
  onDisconnect(kind: DisconnectKind, now: number): ReconnectDecision {
    const p = this.policy
    const healthy = this.connectedAt !== null && now - this.connectedAt >= p.healthyUptimeMs && this.events >= p.healthyEvents
    this.connectedAt = null
    this.events = 0

    if (healthy) {
      // A connection that did real work proves the host is fine: start over.
      this.failures = 0
      this.kicks = 0
    }

    if (kind === 'kicked-while-paused') {
      // Not the host's fault; reconnect soon, but don't let a kick loop hammer it either.
      const ceiling = Math.min(p.capMs, p.kickBaseMs * 2 ** Math.min(this.kicks, 30))
      this.kicks++
      return { action: 'retry', delayMs: this.jitter(ceiling), failures: this.failures }
    }

    if (healthy) {
      // Dropped after a good run: redial promptly (still jittered, to spread a mass disconnect).
      return { action: 'retry', delayMs: this.jitter(p.baseMs), failures: 0 }
    }

    this.failures++
    if (this.failures >= p.offlineAfter) {
      const d = p.offlineRetryMs * (0.9 + 0.2 * this.rand())
      return { action: 'offline', delayMs: Math.round(d), failures: this.failures }
    }
    const ceiling = Math.min(p.capMs, p.baseMs * 2 ** (this.failures - 1))
    return { action: 'retry', delayMs: this.jitter(ceiling), failures: this.failures }
  }

  /** Full jitter: uniform in [0, ceiling]. */
  private jitter(ceiling: number): number {
    return Math.round(this.rand() * ceiling)
  }

  private rand(): number {
    const r = this.random()
    // A misbehaving injected source must not produce negative or NaN delays.
    return Number.isFinite(r) ? Math.min(Math.max(r, 0), 1) : 0.5
  }
}

/**
 * Startup stagger: offsets (ms) that spread `count` connects uniformly over `windowMs`, one per
 * slot with jitter inside the slot — so thousands of hosts don't resolve DNS and handshake TLS in
 * the same second (indigo sleeps 1 ms between hosts, which is still a burst). Index i's offset is
 * in [i*slot, (i+1)*slot), so the order of the input list is kept.
 */
export function startupStagger(count: number, windowMs: number, random: () => number = Math.random): number[] {
  if (count <= 0) return []
  const slot = windowMs / count
  const out = new Array<number>(count)
  for (let i = 0; i < count; i++) {
    const r = random()
    const j = Number.isFinite(r) ? Math.min(Math.max(r, 0), 0.999999) : 0
    out[i] = Math.floor(i * slot + j * slot)
  }
  return out
}
