import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { CursorRegistry } from '../../../src/subscriber/ingest.ts'
import { FakeUpstream, identityFrame, infoFrame, waitFor } from '../../helpers/fake-upstream.ts'
import { FakePipeline, harness, hostRow, insertHost, startSubscriber, type Harness } from './helpers.ts'

let h: Harness
before(async () => {
  h = await harness('sub')
})
after(async () => {
  await h.close()
})

const DIDS = ['did:plc:aaaaaaaaaaaaaaaaaaaaaaaa', 'did:plc:bbbbbbbbbbbbbbbbbbbbbbbb', 'did:plc:cccccccccccccccccccccccc']

function range(a: number, b: number): number[] {
  return Array.from({ length: b - a + 1 }, (_, i) => a + i)
}

describe('subscriber', () => {
  it('admin-added localhost host: subscribes at the live head, sends an atproto-relay User-Agent, reconnects after a drop from the cursor', async () => {
    const up = await FakeUpstream.start()
    const cursors = new CursorRegistry()
    const sink = new FakePipeline(h.db, cursors)
    const s = await startSubscriber(h, sink, { cursors })
    try {
      assert.equal(await s.sub.requestCrawl(up.hostname, { admin: true }), 'created')
      await waitFor(() => up.openConnections.length === 1, 5000, 'first connection')
      assert.equal(up.connections[0]!.cursor, null, 'a new host starts at the live head')
      assert.match(up.connections[0]!.userAgent ?? '', /atproto-relay/)
      up.append(5, { dids: DIDS })
      await waitFor(() => sink.persisted.length === 5, 5000, '5 persisted')
      const id = (await hostRow(h.db, up.hostname))!.id
      await waitFor(async () => (await hostRow(h.db, up.hostname))!.last_seq === 5, 5000, 'cursor 5 saved')

      up.dropAll()
      await waitFor(() => up.openConnections.length === 1 && up.connections.length === 2, 5000, 'reconnect')
      assert.equal(up.connections[1]!.cursor, '5')
      up.append(5, { dids: DIDS })
      await waitFor(() => sink.persisted.length === 10, 5000, '10 persisted')
      assert.deepEqual(sink.seqs(id), range(1, 10))
      assert.equal(await s.metric('relay_upstream_reconnects_total', { cause: 'dropped' }), 1)
      assert.equal(await s.metric('relay_upstream_frames_total', { type: 'identity' }), 10)
      assert.deepEqual(s.sub.connectedHosts(), [up.hostname])
    } finally {
      await s.sub.stop?.()
      sink.close()
      await up.close()
    }
  })

  it('cursor resumes after a subscriber restart without gaps or duplicates', async () => {
    const up = await FakeUpstream.start()
    const cursors1 = new CursorRegistry()
    const sink1 = new FakePipeline(h.db, cursors1, { intervalMs: 20 })
    const s1 = await startSubscriber(h, sink1, { cursors: cursors1 })
    let s2: Awaited<ReturnType<typeof startSubscriber>> | undefined
    const sink2 = new FakePipeline(h.db, new CursorRegistry())
    try {
      await s1.sub.requestCrawl(up.hostname, { admin: true })
      await waitFor(() => up.openConnections.length === 1, 5000, 'connection')
      up.append(300, { dids: DIDS })
      await waitFor(() => sink1.persisted.length >= 100, 5000, 'some persisted')
      // Stop while frames are still in the pipeline: stop must wait for them (and their cursors).
      sink1.hold = true
      up.append(20, { dids: DIDS }) // guarantees frames in flight whatever the timing so far
      await waitFor(() => sink1.pending.length > 0, 5000, 'frames in flight')
      let stopped = false
      const stopping = Promise.resolve(s1.sub.stop?.()).then(() => {
        stopped = true
      })
      await new Promise((r) => setTimeout(r, 100))
      assert.equal(stopped, false, 'stop waits for in-flight frames')
      assert.ok(s1.sub.manager.pendingSubmits > 0)
      sink1.hold = false
      await stopping
      assert.equal(sink1.pending.length, 0)
      sink1.close()
      const got1 = sink1.seqs()
      const saved = (await hostRow(h.db, up.hostname))!.last_seq
      assert.equal(saved, got1[got1.length - 1], 'saved cursor = last persisted seq')
      assert.deepEqual(got1, range(1, got1.length))
      // The upstream keeps producing while we are down.
      up.append(50, { dids: DIDS })

      s2 = await startSubscriber(h, sink2, { cursors: sink2.cursors })
      await waitFor(() => up.connections.length === 2, 5000, 'second connection')
      assert.equal(up.connections[1]!.cursor, String(saved))
      up.append(50, { dids: DIDS })
      await waitFor(() => got1.length + sink2.persisted.length === 420, 5000, 'all persisted')
      assert.deepEqual([...got1, ...sink2.seqs()], range(1, 420))
    } finally {
      await s2?.sub.stop?.()
      sink2.close()
      sink1.close()
      await up.close()
    }
  })

  it('duplicate and decreasing seqs are dropped and counted; #info and unknown frames are tolerated', async () => {
    const up = await FakeUpstream.start()
    const cursors = new CursorRegistry()
    const sink = new FakePipeline(h.db, cursors)
    const s = await startSubscriber(h, sink, { cursors })
    try {
      await s.sub.requestCrawl(up.hostname, { admin: true })
      await waitFor(() => up.openConnections.length === 1, 5000, 'connection')
      const did = DIDS[0]!
      for (const seq of [1, 2, 2, 1, 3]) up.appendFrame(seq, did, identityFrame(seq, did), { log: false })
      up.broadcastRaw(infoFrame('OutdatedCursor', 'Requested cursor exceeded limit. Possibly missing events'))
      up.appendFrame(4, did, identityFrame(4, did), { log: false })
      await waitFor(() => sink.persisted.length === 4, 5000, '4 persisted')
      assert.deepEqual(sink.seqs(), [1, 2, 3, 4])
      assert.equal(await s.metric('relay_upstream_dropped_total', { reason: 'duplicate_seq' }), 1)
      assert.equal(await s.metric('relay_upstream_dropped_total', { reason: 'decreasing_seq' }), 1)
      assert.equal(await s.metric('relay_upstream_info_total', { name: 'OutdatedCursor' }), 1)
      assert.equal(up.connections.length, 1, 'connection kept')
    } finally {
      await s.sub.stop?.()
      sink.close()
      await up.close()
    }
  })

  it('a rate-limited host is slowed, not dropped: every event arrives, later', async () => {
    const up = await FakeUpstream.start()
    const cursors = new CursorRegistry()
    const sink = new FakePipeline(h.db, cursors)
    const s = await startSubscriber(h, sink, { cursors, limits: () => ({ perSecond: 10, perHour: 1000, perDay: 10000 }) })
    try {
      await s.sub.requestCrawl(up.hostname, { admin: true })
      await waitFor(() => up.openConnections.length === 1, 5000, 'connection')
      const t0 = Date.now()
      up.append(25, { dids: DIDS })
      await waitFor(() => sink.persisted.length >= 10, 5000, 'first window')
      assert.ok(sink.persisted.length < 25, 'not everything at once')
      await waitFor(() => s.sub.manager.get(up.hostname)!.paused, 2000, 'socket paused by the limit')
      await waitFor(() => sink.persisted.length === 25, 10_000, 'all 25')
      assert.deepEqual(sink.seqs(), range(1, 25))
      assert.ok(Date.now() - t0 >= 1000, 'spread over more than one second window')
      assert.ok((await s.metric('relay_upstream_rate_limit_waits_total', { tier: 'second' })) >= 1)
      assert.equal(await s.metric('relay_upstream_dropped_total'), 0)
      assert.equal(up.connections.length, 1)
    } finally {
      await s.sub.stop?.()
      sink.close()
      await up.close()
    }
  })

  it('a slow pipeline pauses the upstream socket (memory bounded, upstream buffers grow) and loses nothing', async () => {
    const up = await FakeUpstream.start()
    const cursors = new CursorRegistry()
    const sink = new FakePipeline(h.db, cursors, { capacity: 8 })
    sink.hold = true
    const s = await startSubscriber(h, sink, { cursors })
    try {
      await s.sub.requestCrawl(up.hostname, { admin: true })
      await waitFor(() => up.openConnections.length === 1, 5000, 'connection')
      const N = 3000
      up.append(N, { dids: DIDS, padBytes: 2000 }) // ~6 MB
      await waitFor(() => s.sub.manager.get(up.hostname)!.paused, 5000, 'paused')
      // The upstream's socket backs up because we stopped reading.
      await waitFor(() => up.bufferedAmount() > 1_000_000, 5000, 'upstream bufferedAmount grows')
      const submitted = sink.submitted
      await new Promise((r) => setTimeout(r, 200))
      assert.equal(sink.submitted, submitted, 'nothing more read while paused')
      assert.equal(submitted, 8)
      const buffered = await s.metric('relay_upstream_buffered_bytes')
      assert.ok(buffered < 1_000_000, `relay-side buffer bounded (${buffered} bytes)`)
      assert.ok((await s.metric('relay_upstream_backpressure_waits_total')) >= 1)
      sink.hold = false
      await waitFor(() => sink.persisted.length === N, 20_000, 'all delivered')
      assert.deepEqual(sink.seqs(), range(1, N))
    } finally {
      await s.sub.stop?.()
      sink.close()
      await up.close()
    }
  })

  it('FutureCursor → host idle, cursor forgotten, resubscribed later from the live head', async () => {
    const up = await FakeUpstream.start()
    up.append(10, { dids: DIDS })
    await insertHost(h.db, up.hostname, { lastSeq: 1000 })
    const cursors = new CursorRegistry()
    const sink = new FakePipeline(h.db, cursors)
    const s = await startSubscriber(h, sink, { cursors, env: { RELAY_HOST_IDLE_RETRY: '1s' } })
    try {
      await waitFor(() => up.connections.length === 1, 5000, 'connection')
      assert.equal(up.connections[0]!.cursor, '1000')
      await waitFor(async () => (await hostRow(h.db, up.hostname))!.status === 'idle', 5000, 'idle')
      assert.equal((await hostRow(h.db, up.hostname))!.last_seq, -1)
      assert.match((await hostRow(h.db, up.hostname))!.last_error ?? '', /FutureCursor/)
      await waitFor(() => up.openConnections.length === 1 && up.connections.length === 2, 5000, 'resubscribed')
      assert.equal(up.connections[1]!.cursor, null)
      await waitFor(async () => (await hostRow(h.db, up.hostname))!.status === 'active', 5000, 'active again')
      up.append(2, { dids: DIDS })
      await waitFor(() => sink.persisted.length === 2, 5000, 'live events')
      assert.deepEqual(sink.seqs(), [11, 12])
      assert.equal(await s.metric('relay_upstream_cursor_resets_total', { reason: 'future_cursor' }), 1)
    } finally {
      await s.sub.stop?.()
      sink.close()
      await up.close()
    }
  })

  it('a stale cursor is abandoned for the live head; a PDS whose seq went backwards is followed from its new seqs', async () => {
    const stale = await FakeUpstream.start()
    const reset = await FakeUpstream.start()
    stale.append(100)
    await insertHost(h.db, stale.hostname, { lastSeq: 50, lastEventAt: new Date(Date.now() - 3 * 86_400_000) })
    // `reset` replays from seq 1 whatever cursor it is given (its log was wiped).
    await insertHost(h.db, reset.hostname, { lastSeq: 500 })
    reset.onConnect = (conn) => {
      for (let seq = 1; seq <= 3; seq++) reset.send(conn, identityFrame(seq, DIDS[0]!))
      return false
    }
    const cursors = new CursorRegistry()
    const sink = new FakePipeline(h.db, cursors)
    const s = await startSubscriber(h, sink, { cursors })
    try {
      await waitFor(() => stale.connections.length === 1 && reset.connections.length === 1, 5000, 'connections')
      assert.equal(stale.connections[0]!.cursor, null, 'stale cursor not used')
      assert.equal(reset.connections[0]!.cursor, '500')
      const resetId = (await hostRow(h.db, reset.hostname))!.id
      await waitFor(() => sink.seqs(resetId).length === 3, 5000, 'reset host events')
      assert.deepEqual(sink.seqs(resetId), [1, 2, 3])
      await waitFor(async () => (await hostRow(h.db, reset.hostname))!.last_seq === 3, 5000, 'cursor follows the new seqs')
      assert.equal(await s.metric('relay_upstream_cursor_resets_total', { reason: 'stale' }), 1)
      assert.equal(await s.metric('relay_upstream_cursor_resets_total', { reason: 'seq_went_backwards' }), 1)
    } finally {
      await s.sub.stop?.()
      sink.close()
      await stale.close()
      await reset.close()
    }
  })

  it('oversized frame: dropped, counted, cursor moves past it, connection kept; beyond the hard cap: closed, error recorded, redialled', async () => {
    const up = await FakeUpstream.start()
    const cursors = new CursorRegistry()
    const sink = new FakePipeline(h.db, cursors)
    const s = await startSubscriber(h, sink, { cursors, env: { RELAY_UPSTREAM_MAX_FRAME: '4KiB', RELAY_UPSTREAM_HARD_FRAME_CAP: '32KiB' } })
    try {
      await s.sub.requestCrawl(up.hostname, { admin: true })
      await waitFor(() => up.openConnections.length === 1, 5000, 'connection')
      const did = DIDS[0]!
      up.appendFrame(1, did, identityFrame(1, did))
      up.appendFrame(2, did, identityFrame(2, did, 10_000))
      up.appendFrame(3, did, identityFrame(3, did))
      await waitFor(() => sink.persisted.length === 2, 5000, '2 persisted')
      assert.deepEqual(sink.seqs(), [1, 3])
      assert.equal(await s.metric('relay_upstream_dropped_total', { reason: 'oversize' }), 1)
      assert.equal(up.connections.length, 1)
      await waitFor(async () => (await hostRow(h.db, up.hostname))!.last_seq === 3, 5000, 'cursor past the oversized frame')

      up.appendFrame(4, did, identityFrame(4, did, 40_000), { log: false })
      await waitFor(() => up.connections.length === 2, 5000, 'redialled')
      assert.equal(up.connections[1]!.cursor, '3')
      assert.equal(await s.metric('relay_upstream_reconnects_total', { cause: 'frame_too_large' }), 1)
      await waitFor(async () => /size|payload/i.test((await hostRow(h.db, up.hostname))!.last_error ?? ''), 5000, 'error recorded')
    } finally {
      await s.sub.stop?.()
      sink.close()
      await up.close()
    }
  })

  it('garbage framing closes the connection and reconnects with backoff from the cursor', async () => {
    const up = await FakeUpstream.start()
    const cursors = new CursorRegistry()
    const sink = new FakePipeline(h.db, cursors)
    const s = await startSubscriber(h, sink, { cursors })
    try {
      await s.sub.requestCrawl(up.hostname, { admin: true })
      await waitFor(() => up.openConnections.length === 1, 5000, 'connection')
      up.append(3, { dids: DIDS })
      await waitFor(() => sink.persisted.length === 3, 5000, '3 persisted')
      up.broadcastRaw(Uint8Array.from([0xa1, 0x62, 0x6f, 0x70])) // truncated CBOR header
      await waitFor(() => up.connections.length === 2 && up.openConnections.length === 1, 5000, 'reconnected')
      assert.equal(up.connections[1]!.cursor, '3')
      assert.equal(await s.metric('relay_upstream_reconnects_total', { cause: 'framing' }), 1)
      up.broadcastRaw(Buffer.from('hello'), { binary: false }) // text frames are invalid framing too
      await waitFor(() => up.connections.length === 3 && up.openConnections.length === 1, 5000, 'reconnected again')
      up.append(2, { dids: DIDS })
      await waitFor(() => sink.persisted.length === 5, 5000, 'continues')
      assert.deepEqual(sink.seqs(), range(1, 5))
      const row = (await hostRow(h.db, up.hostname))!
      assert.match(row.last_error ?? '', /invalid frame|text/)
    } finally {
      await s.sub.stop?.()
      sink.close()
      await up.close()
    }
  })

  it('an upstream that answers the upgrade as a relay is refused and banned', async () => {
    const up = await FakeUpstream.start({ serverHeader: 'other-relay/1.0 (atproto-relay)' })
    await insertHost(h.db, up.hostname)
    const sink = new FakePipeline(h.db, new CursorRegistry())
    const s = await startSubscriber(h, sink, { cursors: sink.cursors })
    try {
      await waitFor(async () => (await hostRow(h.db, up.hostname))!.status === 'banned', 5000, 'banned')
      await new Promise((r) => setTimeout(r, 200))
      assert.ok(up.connections.length <= 1, 'not redialled')
      assert.deepEqual(s.sub.connectedHosts(), [])
    } finally {
      await s.sub.stop?.()
      sink.close()
      await up.close()
    }
  })

  it('ConsumerTooSlow while we were paused does not count toward offline', async () => {
    const up = await FakeUpstream.start()
    const cursors = new CursorRegistry()
    const sink = new FakePipeline(h.db, cursors, { capacity: 2 })
    sink.hold = true
    const s = await startSubscriber(h, sink, { cursors })
    try {
      await s.sub.requestCrawl(up.hostname, { admin: true })
      await waitFor(() => up.openConnections.length === 1, 5000, 'connection')
      up.append(5, { dids: DIDS })
      await waitFor(() => s.sub.manager.get(up.hostname)!.paused, 5000, 'paused')
      up.sendError(up.openConnections[0]!, 'ConsumerTooSlow', 'Stream consumer too slow')
      sink.hold = false
      await waitFor(() => up.connections.length === 2, 5000, 'reconnected')
      assert.equal(await s.metric('relay_upstream_reconnects_total', { cause: 'consumer_too_slow' }), 1)
      assert.equal(s.sub.manager.get(up.hostname)!.backoff.consecutiveFailures, 0)
    } finally {
      await s.sub.stop?.()
      sink.close()
      await up.close()
    }
  })
})
