import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect, metricValue, range, startHarness, waitFor } from './helpers.ts'

const KiB = 1024

test('a paused consumer falls back to catch-up and is caught up on resume; a fast one is unaffected', async () => {
  const h = await startHarness({
    softLimitBytes: 64 * KiB,
    catchupFillBytes: 32 * KiB,
    ringMaxFrames: 500, // smaller than the backlog: part of the catch-up comes from the store
    storePageSize: 100,
    hardLimitBytes: 1024 * 1024 * 1024, // never kick in this test
  })
  try {
    const slow = connect(h.url())
    const fast = connect(h.url())
    await Promise.all([slow.opened, fast.opened])
    slow.ws.pause()
    // ~10 MB of events in bursts: far beyond socket buffers and the ring
    for (let i = 0; i < 40; i++) {
      h.publish(250, 1000)
      await new Promise((r) => setImmediate(r))
    }
    const last = h.seq()
    await fast.waitFor(() => fast.seqs().at(-1) === last, 10_000, 'fast consumer')
    assert.deepEqual(fast.seqs(), range(1, last))
    await waitFor(() => h.b.consumerModes().catchup === 1, 2000, 'slow consumer in catch-up')
    assert.ok(slow.seqs().length < last / 2, `slow consumer got only ${slow.seqs().length}`)
    // the paused consumer's socket holds a userland backlog, and the gauge sees it
    const backlogMax = await metricValue(h.registry, 'relay_firehose_socket_backlog_bytes', { stat: 'max' })
    const backlogTotal = await metricValue(h.registry, 'relay_firehose_socket_backlog_bytes', { stat: 'total' })
    assert.ok(backlogMax > 0 && backlogMax <= backlogTotal, `backlog max ${backlogMax}, total ${backlogTotal}`)
    slow.ws.resume()
    // more events while it catches up
    const more = (async () => {
      for (let i = 0; i < 20; i++) {
        h.publish(50, 1000)
        await new Promise((r) => setTimeout(r, 2))
      }
    })()
    await more
    const final = h.seq()
    await slow.waitFor(() => slow.seqs().at(-1) === final, 10_000, 'slow consumer catch-up')
    await fast.waitFor(() => fast.seqs().at(-1) === final, 10_000, 'fast consumer')
    assert.deepEqual(slow.seqs(), range(1, final))
    assert.deepEqual(fast.seqs(), range(1, final))
    await waitFor(() => h.b.consumerModes().live === 2, 2000, 'both live again')
    assert.ok((await metricValue(h.registry, 'relay_firehose_frames_sent_total', { source: 'store' })) > 0)
    assert.ok((await metricValue(h.registry, 'relay_firehose_mode_switches_total', { direction: 'to_live' })) >= 1)
    assert.equal(await metricValue(h.registry, 'relay_firehose_consumer_kicks_total'), 0)
  } finally {
    await h.close()
  }
})

test('a consumer that never reads gets ConsumerTooSlow and close 1008; others unaffected', async () => {
  const h = await startHarness({
    softLimitBytes: 32 * KiB,
    catchupFillBytes: 16 * KiB,
    hardLimitBytes: 256 * KiB,
    tooSlowMs: 300,
    checkIntervalMs: 25,
    closeGraceMs: 5000,
  })
  try {
    const stuck = connect(h.url())
    const fast = connect(h.url())
    await Promise.all([stuck.opened, fast.opened])
    stuck.ws.pause()
    let producing = true
    const producer = (async () => {
      while (producing) {
        h.publish(20, 1000)
        await new Promise((r) => setTimeout(r, 5))
      }
    })()
    await waitFor(() => h.b.consumerCount === 1, 10_000, 'kick')
    producing = false
    await producer
    assert.equal(await metricValue(h.registry, 'relay_firehose_consumer_kicks_total', { reason: 'too_slow' }), 1)
    const last = h.seq()
    await fast.waitFor(() => fast.seqs().at(-1) === last, 5000, 'fast consumer')
    assert.deepEqual(fast.seqs(), range(1, last))
    stuck.ws.resume()
    const closed = await stuck.closed
    assert.deepEqual(closed, { code: 1008, reason: 'ConsumerTooSlow' })
    const errFrame = stuck.msgs.at(-1)!
    assert.deepEqual(errFrame.header, { op: -1 })
    assert.deepEqual(errFrame.body, { error: 'ConsumerTooSlow', message: 'Stream consumer too slow' })
    // what it did receive before the error is gap-free
    const got = stuck.seqs()
    assert.deepEqual(got, range(1, got.length))
  } finally {
    await h.close()
  }
})

test('a consumer behind but catching up (lag shrinking) is not kicked', async () => {
  const h = await startHarness({
    softLimitBytes: 32 * KiB,
    catchupFillBytes: 16 * KiB,
    hardLimitBytes: 64 * KiB,
    tooSlowMs: 100,
    checkIntervalMs: 20,
    storePageSize: 50,
    storeDelayMs: 2,
    ringMaxFrames: 200,
  })
  try {
    h.publish(3000, 1000) // ~3 MB backlog, far above the hard limit
    const c = connect(h.url('?cursor=0'))
    await c.opened
    let producing = true
    const producer = (async () => {
      while (producing) {
        h.publish(2, 1000)
        await new Promise((r) => setTimeout(r, 5))
      }
    })()
    await c.waitFor(() => c.seqs().length >= 3000 && h.b.consumerModes().live === 1, 15_000, 'caught up')
    producing = false
    await producer
    const last = h.seq()
    await c.waitFor(() => c.seqs().at(-1) === last)
    assert.deepEqual(c.seqs(), range(1, last))
    assert.equal(await metricValue(h.registry, 'relay_firehose_consumer_kicks_total'), 0)
  } finally {
    await h.close()
  }
})

test('idle consumers are pinged; one that never answers is terminated, a responsive one stays', async () => {
  const h = await startHarness({ pingIntervalMs: 100, checkIntervalMs: 20 })
  try {
    const { WebSocket } = await import('ws')
    const mute = new WebSocket(h.url(), { autoPong: false })
    mute.on('error', () => {})
    const mutePinged = new Promise<void>((r) => mute.once('ping', () => r()))
    const muteClosed = new Promise<number>((r) => mute.once('close', (code) => r(code)))
    const ok = connect(h.url())
    await ok.opened
    await mutePinged
    assert.equal(await muteClosed, 1006) // terminated, no close frame
    assert.equal(await metricValue(h.registry, 'relay_firehose_consumer_kicks_total', { reason: 'dead' }), 1)
    await new Promise((r) => setTimeout(r, 300))
    assert.equal(h.b.consumerCount, 1)
    h.publish(1)
    await ok.waitFor(() => ok.seqs().length === 1)
  } finally {
    await h.close()
  }
})
