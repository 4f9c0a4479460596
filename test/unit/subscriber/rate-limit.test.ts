import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import {
  HostRateLimiter,
  SlidingWindow,
  TRUSTED_LIMITS,
  compileTrustedDomains,
  computeHostLimits,
} from '../../../src/subscriber/rate-limit.ts'

// A fixed, window-aligned epoch keeps the arithmetic readable: T is a multiple of one day.
const T = 86_400_000 * 20_000

describe('computeHostLimits', () => {
  it('matches indigo for the default account limit', () => {
    assert.deepEqual(computeHostLimits(100, false), { perSecond: 50, perHour: 2_600, perDay: 21_000 })
  })
  it('uses integer division for the per-second term', () => {
    assert.deepEqual(computeHostLimits(1_999, false), { perSecond: 51, perHour: 4_499, perDay: 39_990 })
    assert.deepEqual(computeHostLimits(10_000_000, false), { perSecond: 10_050, perHour: 10_002_500, perDay: 100_020_000 })
  })
  it('gives trusted hosts fixed limits regardless of account limit', () => {
    assert.deepEqual(computeHostLimits(1, true), TRUSTED_LIMITS)
    assert.deepEqual(computeHostLimits(10_000_000, true), { perSecond: 5_000, perHour: 50_000_000, perDay: 500_000_000 })
  })
  it('treats nonsense account limits as 0', () => {
    assert.deepEqual(computeHostLimits(Number.NaN, false), { perSecond: 50, perHour: 2_500, perDay: 20_000 })
    assert.deepEqual(computeHostLimits(-5, false), { perSecond: 50, perHour: 2_500, perDay: 20_000 })
  })
})

describe('SlidingWindow', () => {
  it('admits up to the limit inside one window, then blocks', () => {
    const w = new SlidingWindow(1_000, 3)
    assert.equal(w.tryTake(T), true)
    assert.equal(w.tryTake(T + 10), true)
    assert.equal(w.tryTake(T + 999), true)
    assert.equal(w.tryTake(T + 999), false)
    assert.equal(w.estimate(T + 999), 3)
  })

  it('weights the previous window by the unelapsed fraction of the current one (floored)', () => {
    const w = new SlidingWindow(1_000, 100)
    for (let i = 0; i < 10; i++) assert.ok(w.tryTake(T + 500))
    // next window, 0 ms elapsed: weight 1 → 10
    assert.equal(w.estimate(T + 1_000), 10)
    // 250 ms elapsed: 10 * 750/1000 = 7.5 → 7
    assert.equal(w.estimate(T + 1_250), 7)
    // 999 ms elapsed: 10 * 1/1000 → 0
    assert.equal(w.estimate(T + 1_999), 0)
    // current-window events add on top
    assert.equal(w.tryTake(T + 1_500), true)
    assert.equal(w.estimate(T + 1_500), 6)
  })

  it('forgets everything after two windows', () => {
    const w = new SlidingWindow(1_000, 5)
    for (let i = 0; i < 5; i++) w.tryTake(T + 900)
    assert.equal(w.estimate(T + 1_100), 4) // 5 * 0.9 = 4.5 → 4
    assert.equal(w.estimate(T + 2_000), 0)
    assert.equal(w.estimate(T + 5_000), 0)
  })

  it('window boundaries are aligned to multiples of the size (first ms of a window belongs to it)', () => {
    const w = new SlidingWindow(1_000, 1)
    assert.equal(w.tryTake(T + 999), true)
    assert.equal(w.tryTake(T + 999), false)
    // at T+1000 the previous window weighs 1000/1000: still full
    assert.equal(w.tryTake(T + 1_000), false)
    // one ms later: floor(1 * 999/1000) = 0
    assert.equal(w.tryTake(T + 1_001), true)
  })

  it('waitMs is the exact first admitting millisecond', () => {
    const w = new SlidingWindow(1_000, 10)
    for (let i = 0; i < 10; i++) assert.ok(w.tryTake(T + 200))
    const now = T + 300
    const wait = w.waitMs(now)
    // Blocked for the rest of this window (cur = 10). In the next window, estimate = floor(10 * (1000-e)/1000)
    // ≤ 9 requires 10*(1000-e) < 10000 → e ≥ 1 → T+1001.
    assert.equal(wait, 1_001 - 300)
    const probe = new SlidingWindow(1_000, 10)
    for (let i = 0; i < 10; i++) probe.tryTake(T + 200)
    assert.equal(probe.tryTake(now + wait - 1), false)
    assert.equal(probe.tryTake(now + wait), true)
  })

  it('waitMs accounts for a heavy previous window decaying within the current one', () => {
    const w = new SlidingWindow(1_000, 10)
    for (let i = 0; i < 10; i++) w.tryTake(T + 999) // prev window full
    for (let i = 0; i < 4; i++) assert.equal(w.tryTake(T + 1_600), true)
    // estimate at 1600: floor(10*400/1000)=4 + 4 = 8; room for 2 more
    assert.equal(w.tryTake(T + 1_600), true)
    assert.equal(w.tryTake(T + 1_600), true)
    assert.equal(w.tryTake(T + 1_600), false)
    // need floor(10*(1000-e)/1000) + 6 + 1 ≤ 10 → floor(...) ≤ 3 → 10*(1000-e) < 4000 → e > 600 → e = 601
    assert.equal(w.waitMs(T + 1_600), 1)
    assert.equal(w.tryTake(T + 1_601), true)
  })

  it('waitMs is consistent with tryTake over many random states', () => {
    let seed = 42
    const rnd = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed / 2 ** 31
    }
    for (let trial = 0; trial < 200; trial++) {
      const size = [1_000, 3_600_000][trial % 2]!
      const limit = 1 + Math.floor(rnd() * 50)
      const mk = (): SlidingWindow => new SlidingWindow(size, limit)
      const steps: number[] = []
      let t = T
      for (let i = 0; i < 60; i++) {
        t += Math.floor(rnd() * size * 0.1)
        steps.push(t)
      }
      const w = mk()
      for (const s of steps) w.tryTake(s)
      const now = t
      const wait = w.waitMs(now)
      const replay = (): SlidingWindow => {
        const x = mk()
        for (const s of steps) x.tryTake(s)
        return x
      }
      assert.equal(replay().tryTake(now + wait), true, `trial ${trial}: admitted at now+wait`)
      if (wait > 0) assert.equal(replay().tryTake(now + wait - 1), false, `trial ${trial}: not admitted 1 ms earlier`)
    }
  })

  it('is exact for trusted per-day numbers beyond 2^53 products', () => {
    const mk = (): SlidingWindow => {
      const w = new SlidingWindow(86_400_000, 500_000_000)
      w.add(T + 86_399_999, 500_000_000)
      return w
    }
    const w = mk()
    const now = T + 86_400_001
    // next window, 1 ms elapsed: floor(5e8 * 86_399_999 / 86_400_000) = floor(499_999_994.21) = 499_999_994
    assert.equal(w.estimate(now), 499_999_994)
    w.add(now, 6)
    const wait = w.waitMs(now)
    // need floor(5e8 * (86.4e6 - e) / 86.4e6) ≤ 499_999_993 - 6 … i.e. the weighted prev must drop by one more
    assert.ok(wait > 0 && Number.isFinite(wait))
    const a = mk()
    a.add(now, 6)
    assert.equal(a.tryTake(now + wait - 1), false)
    assert.equal(w.tryTake(now + wait), true)
    // cross-check with exact BigInt arithmetic
    const e = BigInt(now + wait - (T + 86_400_000))
    const est = (500_000_000n * (86_400_000n - e)) / 86_400_000n + 6n
    assert.ok(est + 1n <= 500_000_000n)
    const e1 = e - 1n
    assert.ok((500_000_000n * (86_400_000n - e1)) / 86_400_000n + 6n + 1n > 500_000_000n)
  })

  it('returns Infinity when n exceeds the limit, 0 when admitted', () => {
    const w = new SlidingWindow(1_000, 2)
    assert.equal(w.waitMs(T, 3), Number.POSITIVE_INFINITY)
    assert.equal(w.waitMs(T, 2), 0)
  })

  it('tolerates the clock going backwards', () => {
    const w = new SlidingWindow(1_000, 2)
    w.tryTake(T + 1_500)
    w.tryTake(T + 1_500)
    assert.equal(w.tryTake(T + 900), false)
    assert.ok(w.waitMs(T + 900) > 0)
  })
})

describe('HostRateLimiter', () => {
  it('is all-or-nothing across tiers and reports the tier that opens last', () => {
    let now = T
    const rl = new HostRateLimiter({ perSecond: 5, perHour: 8, perDay: 1_000 }, { now: () => now })
    for (let i = 0; i < 5; i++) assert.deepEqual(rl.tryTake(), { ok: true })
    const r = rl.tryTake()
    assert.equal(r.ok, false)
    assert.equal(r.ok === false && r.tier, 'second')
    now += 2_000
    for (let i = 0; i < 3; i++) assert.deepEqual(rl.tryTake(), { ok: true })
    const r2 = rl.tryTake()
    assert.equal(r2.ok === false && r2.tier, 'hour')
    // blocked takes consumed nothing
    assert.deepEqual(rl.usage(), { second: 3, hour: 8, day: 8 })
  })

  it('one timer suffices: after waitMs the take succeeds', () => {
    let now = T + 123
    const rl = new HostRateLimiter(computeHostLimits(100, false), { now: () => now })
    let admitted = 0
    let timers = 0
    // 3,000 events against 50/s and 2,600/h: the hour tier must throttle eventually.
    let sawHour = false
    while (admitted < 3_000) {
      const r = rl.tryTake()
      if (r.ok) {
        admitted++
        continue
      }
      if (r.tier === 'hour') sawHour = true
      assert.ok(r.waitMs > 0 && Number.isFinite(r.waitMs))
      now += r.waitMs
      timers++
      const again = rl.tryTake()
      assert.equal(again.ok, true, 'admitted right after the computed wait')
      admitted++
    }
    assert.ok(sawHour)
    assert.ok(timers > 0)
  })

  it('limits can be changed at runtime, keeping counts', () => {
    let now = T
    const rl = new HostRateLimiter({ perSecond: 2, perHour: 100, perDay: 100 }, { now: () => now })
    rl.tryTake()
    rl.tryTake()
    assert.equal(rl.tryTake().ok, false)
    rl.setLimits({ perSecond: 3, perHour: 100, perDay: 100 })
    assert.equal(rl.tryTake().ok, true)
    rl.setLimits({ perSecond: 1, perHour: 100, perDay: 100 })
    assert.equal(rl.tryTake().ok, false)
    assert.deepEqual(rl.limits(), { perSecond: 1, perHour: 100, perDay: 100 })
    assert.throws(() => rl.setLimits({ perSecond: -1, perHour: 1, perDay: 1 }), RangeError)
    now += 1
  })
})

describe('trusted domains', () => {
  const td = compileTrustedDomains(['*.host.bsky.network', 'Exact.Example.com', '*.good.com'])
  it('wildcards match strictly below the suffix', () => {
    assert.equal(td.matches('morel.us-east.host.bsky.network'), true)
    assert.equal(td.matches('a.host.bsky.network'), true)
    assert.equal(td.matches('host.bsky.network'), false)
    assert.equal(td.matches('evilhost.bsky.network'), false)
    assert.equal(td.matches('sub.good.com'), true)
    assert.equal(td.matches('good.com'), false)
    assert.equal(td.matches('notgood.com'), false)
  })
  it('exact entries match case-insensitively and only exactly', () => {
    assert.equal(td.matches('exact.example.com'), true)
    assert.equal(td.matches('EXACT.example.com'), true)
    assert.equal(td.matches('a.exact.example.com'), false)
  })
  it('rejects wildcard forms other than a leading "*."', () => {
    assert.throws(() => compileTrustedDomains(['*bsky.network']))
    assert.throws(() => compileTrustedDomains(['a.*.com']))
    assert.throws(() => compileTrustedDomains(['*.']))
  })
})
