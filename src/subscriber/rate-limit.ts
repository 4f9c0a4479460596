// Per-host event rate limits: sliding-window counters (per second, hour and day).
//
// The estimate follows the classic "sliding window counter" (as in RussellLuo/slidingwindow,
// which indigo uses): windows are aligned to multiples of their size, and the count at time t is
//   floor(previousWindowCount * unelapsedFractionOfCurrentWindow) + currentWindowCount.
// Unlike indigo, which polls `Allow()` every 100 ms per blocked host, a blocked take returns the
// exact number of milliseconds until every tier admits the event, so the subscriber can pause its
// socket with a single timer (TCP backpressure, no drops, no polling).
//
// Everything here is pure: the clock is injected and all arithmetic is exact integer math.

export type RateTier = 'second' | 'hour' | 'day'

export const RATE_TIERS: readonly RateTier[] = ['second', 'hour', 'day']

export const WINDOW_MS: Readonly<Record<RateTier, number>> = {
  second: 1_000,
  hour: 3_600_000,
  day: 86_400_000,
}

export interface RateLimits {
  perSecond: number
  perHour: number
  perDay: number
}

/** Fixed limits for trusted hosts (indigo `ComputeLimiterCounts`). */
export const TRUSTED_LIMITS: Readonly<RateLimits> = {
  perSecond: 5_000,
  perHour: 50_000_000,
  perDay: 500_000_000,
}

/**
 * indigo's formula: limits scale with the host's account *limit* (not its account count), so an
 * operator raising a host's limit also raises its event budget. Integer division like Go.
 */
export function computeHostLimits(accountLimit: number, trusted: boolean): RateLimits {
  if (trusted) return { ...TRUSTED_LIMITS }
  // A NaN/negative limit (bad admin input) must not produce NaN limits that would block forever.
  const limit = Number.isFinite(accountLimit) && accountLimit > 0 ? Math.floor(accountLimit) : 0
  return {
    perSecond: 50 + Math.floor(limit / 1000),
    perHour: 2_500 + limit,
    perDay: 20_000 + 10 * limit,
  }
}

/**
 * floor(a * b / w) for non-negative integers without losing precision: a * b can exceed 2^53
 * (500M/day trusted limit × 86.4M ms), so split a = q*w + r, where r * b < w * w < 2^53 for our
 * window sizes (86.4M² ≈ 7.5e15).
 */
function mulDivFloor(a: number, b: number, w: number): number {
  const r = a % w
  const q = (a - r) / w
  const rb = r * b
  return q * b + (rb - (rb % w)) / w
}

/**
 * One sliding window. Counts are integers; `limit` may be changed at any time (counts are kept,
 * so lowering a limit throttles immediately and raising it admits immediately).
 */
export class SlidingWindow {
  readonly windowMs: number
  limit: number
  private curStart = 0
  private cur = 0
  private prev = 0

  constructor(windowMs: number, limit: number) {
    if (!Number.isSafeInteger(windowMs) || windowMs <= 0) throw new RangeError('windowMs must be a positive integer')
    this.windowMs = windowMs
    this.limit = checkLimit(limit)
  }

  /** Move the window forward to `now`; time going backwards (clock step) is treated as "no time passed". */
  private roll(now: number): void {
    const start = now - (now % this.windowMs)
    if (start <= this.curStart) return
    // Only the immediately preceding window contributes; anything older has fully expired.
    this.prev = start - this.curStart === this.windowMs ? this.cur : 0
    this.cur = 0
    this.curStart = start
  }

  /** Weighted count at `at` for a hypothetical state (no mutation), used both to admit and to search. */
  private estimateAt(at: number): number {
    const w = this.windowMs
    const start = at - (at % w)
    let prev: number
    let cur: number
    if (start <= this.curStart) {
      prev = this.prev
      cur = this.cur
    } else if (start - this.curStart === w) {
      prev = this.cur
      cur = 0
    } else {
      return 0
    }
    const elapsed = start <= this.curStart ? Math.max(0, at - this.curStart) : at - start
    return mulDivFloor(prev, w - elapsed, w) + cur
  }

  /** Current weighted count (what a take would be compared against). */
  estimate(now: number): number {
    this.roll(now)
    return this.estimateAt(now)
  }

  private admits(at: number, n: number): boolean {
    return this.estimateAt(at) + n <= this.limit
  }

  /**
   * Milliseconds from `now` until `n` more events would be admitted (0 = now). Infinity when
   * n exceeds the limit itself (no amount of waiting helps until the limit is raised).
   *
   * The estimate is non-increasing in time (the previous window's weight only decays; at a window
   * boundary the current count becomes the previous one with weight ≤ 1; two windows later all is
   * zero), so admission is monotone and a binary search over [now, next-next window start] finds
   * the exact first admitting millisecond in ≤ 28 steps, consistent by construction with `take`.
   */
  waitMs(now: number, n = 1): number {
    this.roll(now)
    if (n > this.limit) return Number.POSITIVE_INFINITY
    if (this.admits(now, n)) return 0
    let lo = now // known not to admit
    let hi = this.curStart + 2 * this.windowMs // both windows expired: admits since n <= limit
    while (hi - lo > 1) {
      const mid = lo + Math.floor((hi - lo) / 2)
      if (this.admits(mid, n)) hi = mid
      else lo = mid
    }
    return hi - now
  }

  /** Count n events if admitted; returns whether they were. */
  tryTake(now: number, n = 1): boolean {
    this.roll(now)
    if (!this.admits(now, n)) return false
    this.cur += n
    return true
  }

  /** Count events unconditionally (used after all tiers agreed to admit). */
  add(now: number, n: number): void {
    this.roll(now)
    this.cur += n
  }
}

function checkLimit(limit: number): number {
  if (!Number.isSafeInteger(limit) || limit < 0) throw new RangeError(`rate limit must be a non-negative integer, got ${limit}`)
  return limit
}

export type TakeResult =
  | { ok: true }
  /** `waitMs`: exact ms until *every* tier admits; `tier`: the tier that opens last (for metrics). */
  | { ok: false; tier: RateTier; waitMs: number }

export interface HostRateLimiterOptions {
  /** Injectable clock (ms since epoch); defaults to Date.now. */
  now?: () => number
}

/**
 * The three per-host windows as one unit. A take is all-or-nothing across tiers: indigo's chained
 * limiters consume a per-second token even while the per-hour limiter then blocks, which makes a
 * blocked host burn its budget; here nothing is counted unless all tiers admit.
 */
export class HostRateLimiter {
  private readonly now: () => number
  private readonly windows: Record<RateTier, SlidingWindow>

  constructor(limits: RateLimits, opts: HostRateLimiterOptions = {}) {
    this.now = opts.now ?? Date.now
    this.windows = {
      second: new SlidingWindow(WINDOW_MS.second, limits.perSecond),
      hour: new SlidingWindow(WINDOW_MS.hour, limits.perHour),
      day: new SlidingWindow(WINDOW_MS.day, limits.perDay),
    }
  }

  /**
   * Admit-and-count `n` events now, or say how long to wait. Waiting for the maximum of the
   * per-tier waits is exact because nothing is consumed while paused and each tier's admission
   * is monotone in time. After the wait the caller calls `tryTake` again (normally it succeeds;
   * it can fail again only if limits were lowered meanwhile).
   */
  tryTake(n = 1): TakeResult {
    const now = this.now()
    let worst: RateTier | null = null
    let worstWait = 0
    for (const tier of RATE_TIERS) {
      const wait = this.windows[tier].waitMs(now, n)
      // `>=` makes the longest window win ties, which is the more useful label for operators.
      if (wait > 0 && wait >= worstWait) {
        worst = tier
        worstWait = wait
      }
    }
    if (worst !== null) return { ok: false, tier: worst, waitMs: worstWait }
    for (const tier of RATE_TIERS) this.windows[tier].add(now, n)
    return { ok: true }
  }

  /** Runtime update (admin changed the account limit or the trusted flag); counts are kept. */
  setLimits(limits: RateLimits): void {
    this.windows.second.limit = checkLimit(limits.perSecond)
    this.windows.hour.limit = checkLimit(limits.perHour)
    this.windows.day.limit = checkLimit(limits.perDay)
  }

  limits(): RateLimits {
    return { perSecond: this.windows.second.limit, perHour: this.windows.hour.limit, perDay: this.windows.day.limit }
  }

  /** Weighted counts, e.g. for an admin/status view. */
  usage(): Record<RateTier, number> {
    const now = this.now()
    return {
      second: this.windows.second.estimate(now),
      hour: this.windows.hour.estimate(now),
      day: this.windows.day.estimate(now),
    }
  }
}

/**
 * Trusted-domain patterns: `*.host.bsky.network` matches any name *below* host.bsky.network (but
 * not host.bsky.network itself); any other entry matches exactly. indigo matches `*suffix` with a
 * plain string suffix test, so `*bsky.network` would also match `evilbsky.network`; we only accept
 * the `*.` form and throw on other wildcards so a typo can't silently widen trust.
 */
export interface TrustedDomains {
  matches(hostname: string): boolean
}

export function compileTrustedDomains(patterns: readonly string[]): TrustedDomains {
  const exact = new Set<string>()
  const suffixes: string[] = []
  for (const raw of patterns) {
    const p = raw.trim().toLowerCase()
    if (p === '') continue
    if (p.startsWith('*.')) {
      const rest = p.slice(1) // keeps the leading dot
      if (rest.length < 2 || rest.includes('*')) throw new Error(`invalid trusted-domain pattern: ${raw}`)
      suffixes.push(rest)
    } else if (p.includes('*')) {
      throw new Error(`invalid trusted-domain pattern (only a leading "*." wildcard is supported): ${raw}`)
    } else {
      exact.add(p)
    }
  }
  return {
    matches(hostname: string): boolean {
      const h = hostname.toLowerCase()
      if (exact.has(h)) return true
      for (const s of suffixes) {
        if (h.length > s.length && h.endsWith(s)) return true
      }
      return false
    },
  }
}
