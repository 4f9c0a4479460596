import { test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import { connect, metricValue, range, startHarness, upgradeRefusal, waitFor } from './helpers.ts'
import { SUBSCRIBE_REPOS_PATH } from '../../../src/broadcaster/broadcaster.ts'

test('live delivery: frames arrive in order, byte-identical', async () => {
  const h = await startHarness()
  try {
    h.publish(5) // before connect: not replayed to a live consumer
    const a = connect(h.url())
    const b = connect(h.url('?cursor=')) // empty cursor = live (@atproto/sync 0.1.x)
    await Promise.all([a.opened, b.opened])
    h.publish(200, 300)
    await a.waitFor(() => a.seqs().length >= 200, 5000, 'a')
    await b.waitFor(() => b.seqs().length >= 200, 5000, 'b')
    assert.deepEqual(a.seqs(), range(6, 205))
    assert.deepEqual(b.seqs(), range(6, 205))
    const stored = h.store.frames[10]!
    assert.deepEqual(new Uint8Array(a.msgs[5]!.raw), stored.frame)
    assert.equal(await metricValue(h.registry, 'relay_firehose_consumers_connected'), 2)
    assert.equal(await metricValue(h.registry, 'relay_firehose_consumers', { mode: 'live' }), 2)
    assert.equal(await metricValue(h.registry, 'relay_firehose_frames_sent_total', { source: 'live' }), 400)
    a.ws.send('ignored') // client messages are ignored, not errors
    h.publish(1)
    await a.waitFor(() => a.seqs().length === 201)
  } finally {
    await h.close()
  }
})

test('replay from a cursor across the store/ring boundary, then live, while events keep arriving', async () => {
  // Small ring + slow paged store: the ring moves underneath the replay several times.
  const h = await startHarness({ ringMaxFrames: 100, storePageSize: 37, storeDelayMs: 3 })
  try {
    h.publish(1000)
    assert.equal(h.b.ring.floorSeq, 900)
    const c = connect(h.url('?cursor=250'))
    const fromRing = connect(h.url('?cursor=950'))
    const atHead = connect(h.url('?cursor=1000'))
    await Promise.all([c.opened, fromRing.opened, atHead.opened])
    let producing = true
    const producer = (async () => {
      while (producing) {
        h.publish(7, 50)
        await new Promise((r) => setTimeout(r, 1))
      }
    })()
    await c.waitFor(() => c.seqs().length >= 750 && h.b.consumerModes().catchup === 0, 10_000, 'replay to catch up')
    // let a few more live events arrive after the crossover
    const target = h.seq() + 50
    await waitFor(() => h.seq() >= target, 5000, 'more events')
    producing = false
    await producer
    const last = h.seq()
    for (const cl of [c, fromRing, atHead]) await cl.waitFor(() => cl.seqs().at(-1) === last, 5000, 'last seq')
    assert.deepEqual(c.seqs(), range(251, last))
    assert.deepEqual(fromRing.seqs(), range(951, last))
    assert.deepEqual(atHead.seqs(), range(1001, last))
    assert.ok(h.store.reads >= 2, 'served from the store')
    assert.ok((await metricValue(h.registry, 'relay_firehose_frames_sent_total', { source: 'store' })) >= 650)
    assert.equal(await metricValue(h.registry, 'relay_firehose_connections_total', { outcome: 'replay_store' }), 1)
    assert.equal(await metricValue(h.registry, 'relay_firehose_connections_total', { outcome: 'replay_ring' }), 2)
  } finally {
    await h.close()
  }
})

test('cursor=0 replays everything retained; takedown hides frames from ring and store replay', async () => {
  const h = await startHarness({ ringMaxFrames: 30 })
  try {
    h.publish(60)
    h.store.hiddenDids.add('did:plc:user3')
    assert.ok(h.b.hideDid('did:plc:user3') > 0)
    const c = connect(h.url('?cursor=0'))
    await c.opened
    const expected = range(1, 60).filter((s) => s % 7 !== 3)
    await c.waitFor(() => c.seqs().length >= expected.length)
    h.publish(3)
    await c.waitFor(() => c.seqs().at(-1) === 63)
    assert.deepEqual(c.seqs(), [...expected, 61, 62, 63])
    assert.equal(c.msgs[0]!.header.t, '#identity')
  } finally {
    await h.close()
  }
})

test('OutdatedCursor: #info first, then replay from the oldest retained event', async () => {
  const h = await startHarness({ ringMaxFrames: 50 })
  try {
    h.publish(300)
    h.store.prune(120)
    const c = connect(h.url('?cursor=42'))
    await c.opened
    await c.waitFor(() => c.seqs().at(-1) === 300)
    assert.deepEqual(c.msgs[0]!.header, { t: '#info', op: 1 })
    assert.deepEqual(c.msgs[0]!.body, { name: 'OutdatedCursor', message: 'Requested cursor exceeded limit. Possibly missing events' })
    assert.deepEqual(c.seqs(), range(121, 300))
    // exactly at the window edge: not outdated
    const d = connect(h.url('?cursor=120'))
    await d.opened
    await d.waitFor(() => d.seqs().at(-1) === 300)
    assert.equal(d.msgs[0]!.header.t, '#identity')
    assert.equal(await metricValue(h.registry, 'relay_firehose_connections_total', { outcome: 'outdated' }), 1)
  } finally {
    await h.close()
  }
})

test('FutureCursor: error frame (PDS bytes), then close 1008 "FutureCursor"', async () => {
  const h = await startHarness({ headSeq: 500 })
  try {
    h.publish(3)
    const c = connect(h.url('?cursor=504'))
    const closed = await c.closed
    assert.deepEqual(closed, { code: 1008, reason: 'FutureCursor' })
    assert.equal(c.msgs.length, 1)
    assert.equal(
      c.msgs[0]!.raw.toString('hex'),
      'a1626f7020a2656572726f726c467574757265437572736f72676d65737361676575437572736f7220696e20746865206675747572652e',
    )
    // cursor == head is fine (live)
    const ok = connect(h.url('?cursor=503'))
    await ok.opened
    h.publish(1)
    await ok.waitFor(() => ok.seqs().length === 1)
    assert.deepEqual(ok.seqs(), [504])
    assert.equal(await metricValue(h.registry, 'relay_firehose_connection_rejects_total', { reason: 'future_cursor' }), 1)
  } finally {
    await h.close()
  }
})

test('bad cursor: XRPC JSON 400 before the upgrade (and on a plain GET)', async () => {
  const h = await startHarness()
  try {
    for (const q of ['?cursor=-1', '?cursor=abc', '?cursor=1.5', '?cursor=9007199254740992']) {
      const r = await upgradeRefusal(h.url(q))
      assert.equal(r.status, 400, q)
      assert.equal((r.body as { error: string }).error, 'InvalidRequest')
      assert.match((r.body as { message: string }).message, /cursor/)
      assert.match(String(r.headers['content-type']), /application\/json/)
    }
    const plain = await new Promise<{ status: number; body: string }>((resolve) => {
      http.get(`http://127.0.0.1:${h.port}${SUBSCRIBE_REPOS_PATH}?cursor=-5`, (res) => {
        let body = ''
        res.on('data', (d) => (body += d))
        res.on('end', () => resolve({ status: res.statusCode!, body }))
      })
    })
    assert.equal(plain.status, 400)
    assert.equal(JSON.parse(plain.body).error, 'InvalidRequest')
    const noUpgrade = await new Promise<number>((resolve) => {
      http.get(`http://127.0.0.1:${h.port}${SUBSCRIBE_REPOS_PATH}`, (res) => {
        res.resume()
        resolve(res.statusCode!)
      })
    })
    assert.equal(noUpgrade, 426)
    assert.equal(h.b.consumerCount, 0)
  } finally {
    await h.close()
  }
})

test('per-IP limit: 429 XRPC JSON before upgrade; slot freed on disconnect', async () => {
  const h = await startHarness({ maxConnectionsPerIp: 2 })
  try {
    const a = connect(h.url())
    const b = connect(h.url())
    await Promise.all([a.opened, b.opened])
    const r = await upgradeRefusal(h.url())
    assert.equal(r.status, 429)
    assert.equal((r.body as { error: string }).error, 'RateLimitExceeded')
    a.ws.close()
    await a.closed
    await waitFor(() => h.b.consumerCount === 1)
    const c = connect(h.url())
    await c.opened
  } finally {
    await h.close()
  }
})

test('closeAll closes consumers abnormally with 1012 so clients reconnect', async () => {
  const h = await startHarness()
  const a = connect(h.url())
  const b = connect(h.url('?cursor=0'))
  await Promise.all([a.opened, b.opened])
  await h.close()
  assert.equal((await a.closed).code, 1012)
  assert.equal((await b.closed).code, 1012)
})
