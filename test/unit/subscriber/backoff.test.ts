import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { DEFAULT_BACKOFF, ReconnectBackoff, startupStagger } from '../../../src/subscriber/backoff.ts'

const ONE = (): number => 1 // worst-case jitter: the ceiling itself
const HALF = (): number => 0.5

describe('ReconnectBackoff', () => {
  it('full jitter over an exponential ceiling, capped', () => {
    const b = new ReconnectBackoff({}, ONE)
    const delays: number[] = []
    for (let i = 0; i < 9; i++) {
      const d = b.onDisconnect('dial-failed', 0)
      assert.equal(d.action, 'retry')
      delays.push(d.delayMs)
    }
    assert.deepEqual(delays, [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000])
    const z = new ReconnectBackoff({}, () => 0)
    assert.equal(z.onDisconnect('dial-failed', 0).delayMs, 0)
    const h = new ReconnectBackoff({}, HALF)
    h.onDisconnect('dial-failed', 0)
    assert.equal(h.onDisconnect('dial-failed', 0).delayMs, 1_000)
  })

  it('goes offline after N consecutive failures, then retries rarely (±10%)', () => {
    const b = new ReconnectBackoff({ offlineAfter: 3 }, HALF)
    assert.equal(b.onDisconnect('dial-failed', 0).action, 'retry')
    assert.equal(b.onDisconnect('dropped', 0).action, 'retry')
    const d = b.onDisconnect('dial-failed', 0)
    assert.deepEqual(d, { action: 'offline', delayMs: 3_600_000, failures: 3 })
    assert.equal(b.isOffline, true)
    const again = b.onDisconnect('dial-failed', 0)
    assert.equal(again.action, 'offline')
    const lo = new ReconnectBackoff({ offlineAfter: 1 }, () => 0).onDisconnect('dial-failed', 0)
    const hi = new ReconnectBackoff({ offlineAfter: 1 }, ONE).onDisconnect('dial-failed', 0)
    assert.equal(lo.delayMs, 3_240_000)
    assert.equal(hi.delayMs, 3_960_000)
  })

  it('default: offline after 15', () => {
    const b = new ReconnectBackoff({}, HALF)
    for (let i = 1; i < DEFAULT_BACKOFF.offlineAfter; i++) assert.equal(b.onDisconnect('dial-failed', 0).action, 'retry')
    assert.equal(b.onDisconnect('dial-failed', 0).action, 'offline')
  })

  it('a connection that opens and drops at once still counts (no tight redial loop)', () => {
    const b = new ReconnectBackoff({}, ONE)
    for (let i = 0; i < 5; i++) {
      b.onConnected(1_000 * i)
      b.onEvent()
      const d = b.onDisconnect('dropped', 1_000 * i + 10)
      assert.equal(d.failures, i + 1)
    }
  })

  it('resets only after a connection that stayed up and delivered events', () => {
    const b = new ReconnectBackoff({ healthyUptimeMs: 30_000, healthyEvents: 1 }, ONE)
    for (let i = 0; i < 4; i++) b.onDisconnect('dial-failed', 0)
    assert.equal(b.consecutiveFailures, 4)
    // long but silent: not healthy
    b.onConnected(0)
    assert.equal(b.onDisconnect('dropped', 60_000).failures, 5)
    // events but short: not healthy
    b.onConnected(100_000)
    b.onEvent()
    assert.equal(b.onDisconnect('dropped', 100_500).failures, 6)
    // both: reset, prompt redial
    b.onConnected(200_000)
    b.onEvent()
    const d = b.onDisconnect('dropped', 230_000)
    assert.deepEqual(d, { action: 'retry', delayMs: 1_000, failures: 0 })
    assert.equal(b.consecutiveFailures, 0)
    // the next failure starts the ladder again
    assert.equal(b.onDisconnect('dial-failed', 231_000).delayMs, 1_000)
  })

  it('a healthy run also brings an offline host back', () => {
    const b = new ReconnectBackoff({ offlineAfter: 2 }, HALF)
    b.onDisconnect('dial-failed', 0)
    assert.equal(b.onDisconnect('dial-failed', 0).action, 'offline')
    b.onConnected(0)
    b.onEvent()
    assert.equal(b.onDisconnect('dropped', 60_000).action, 'retry')
    assert.equal(b.isOffline, false)
  })

  it('kicked while paused (ConsumerTooSlow) reconnects without counting toward offline', () => {
    const b = new ReconnectBackoff({ offlineAfter: 3, kickBaseMs: 250 }, ONE)
    b.onDisconnect('dial-failed', 0)
    const delays: number[] = []
    for (let i = 0; i < 20; i++) {
      b.onConnected(i)
      const d = b.onDisconnect('kicked-while-paused', i + 1)
      assert.equal(d.action, 'retry')
      assert.equal(d.failures, 1)
      delays.push(d.delayMs)
    }
    // its own gentle exponential so a kick loop cannot hammer the host, capped like the rest
    assert.deepEqual(delays.slice(0, 4), [250, 500, 1_000, 2_000])
    assert.equal(delays[19], 60_000)
    assert.equal(b.consecutiveFailures, 1)
    b.reset()
    assert.equal(b.consecutiveFailures, 0)
  })

  it('sanitises a bad random source and validates the policy', () => {
    const b = new ReconnectBackoff({}, () => Number.NaN)
    assert.equal(b.onDisconnect('dial-failed', 0).delayMs, 500)
    assert.equal(new ReconnectBackoff({}, () => 7).onDisconnect('dial-failed', 0).delayMs, 1_000)
    assert.throws(() => new ReconnectBackoff({ baseMs: 0 }))
    assert.throws(() => new ReconnectBackoff({ baseMs: 10, capMs: 5 }))
    assert.throws(() => new ReconnectBackoff({ offlineAfter: 0 }))
  })
})

describe('startupStagger', () => {
  it('spreads connects over the window, one per slot, in input order', () => {
    let i = 0
    const rnd = (): number => [0, 0.5, 0.999][i++ % 3]!
    const out = startupStagger(1_000, 60_000, rnd)
    assert.equal(out.length, 1_000)
    for (let k = 0; k < out.length; k++) {
      assert.ok(out[k]! >= k * 60 && out[k]! < (k + 1) * 60, `slot ${k}: ${out[k]}`)
      if (k > 0) assert.ok(out[k]! >= out[k - 1]!)
    }
    assert.ok(out[999]! < 60_000)
  })
  it('edge cases', () => {
    assert.deepEqual(startupStagger(0, 1_000), [])
    assert.deepEqual(
      startupStagger(1, 1_000, () => 0),
      [0],
    )
    assert.deepEqual(
      startupStagger(3, 0, () => 0.5),
      [0, 0, 0],
    )
    const many = startupStagger(10_000, 1_000, ONE)
    assert.ok(many.every((x) => x >= 0 && x < 1_000))
  })
})
