// Slow consumers through the whole relay (real signed events, real sockets, Postgres log):
// - a consumer that stops reading falls behind while a fast one gets everything; when it reads
//   again it is caught up from the ring and the event log, every event in order;
// - with a small hard limit and too-slow period, one that keeps not reading gets ConsumerTooSlow
//   and is closed, while the fast one and ingest carry on.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createTestDatabase, type TestDatabase } from '../../helpers/db.ts'
import { FakeUpstream } from '../../helpers/fake-upstream.ts'
import { waitFor } from '../../helpers/relay-process.ts'
import { buildEvents, createSignedAccount, DidServer, type BuiltFrame, type SignedAccount } from '../../helpers/signed-repo.ts'
import { addUpstream, feed, range, RawConsumer, relayEnv, startInProcessRelay, type InProcessRelay } from './helpers.ts'
import { closeConsumers } from './helpers.ts'

let dids: DidServer

before(async () => {
  dids = await DidServer.start()
})
after(async () => {
  await closeConsumers()
  await dids?.close()
})

interface Setup {
  tdb: TestDatabase
  up: FakeUpstream
  relay: InProcessRelay
  accounts: SignedAccount[]
  close(): Promise<void>
}

async function setup(prefix: string, env: Record<string, string>): Promise<Setup> {
  const tdb = await createTestDatabase(prefix)
  const up = await FakeUpstream.start()
  const accounts: SignedAccount[] = []
  for (let i = 0; i < 4; i++) accounts.push(await createSignedAccount(dids, `http://${up.hostname}`))
  const relay = await startInProcessRelay(relayEnv(tdb.url, dids.url, up, env))
  await addUpstream(relay, up)
  return {
    tdb,
    up,
    relay,
    accounts,
    async close() {
      await relay.close()
      await up.close()
      await tdb.drop()
    },
  }
}

describe('slow consumers', () => {
  it('a paused consumer is caught up from ring and log when it reads again; a fast one is unaffected', async () => {
    const s = await setup('fh_slow', {
      RELAY_RING_MAX_FRAMES: '100',
      RELAY_REPLAY_PAGE_SIZE: '50',
      RELAY_CONSUMER_SOFT_LIMIT: '64KiB',
    })
    const slow = await RawConsumer.open(s.relay.ws)
    const fast = await RawConsumer.open(s.relay.ws)
    try {
      slow.ws.pause()
      // ~12 MB: well beyond the socket buffers and the 100-frame ring
      const frames = await buildEvents(s.accounts, 1, 300, { padBytes: 40_000 })
      await feed(s.up, frames)
      await fast.until(() => fast.events().length === 300, 'fast consumer gets everything', 30_000)
      assert.deepEqual(fast.seqs(), range(1, 300))
      await waitFor(async () => (await s.relay.metric('relay_firehose_consumers', { mode: 'catchup' })) === 1 || undefined, {
        what: 'slow consumer in catch-up',
        timeoutMs: 10_000,
      })
      const gotWhilePaused = slow.events().length
      assert.ok(gotWhilePaused < 200, `the paused consumer received only what its socket buffers hold (${gotWhilePaused})`)
      assert.equal(await s.relay.metric('relay_events_accepted_total'), 300, 'ingest did not wait for the slow consumer')

      // it reads again while more events arrive
      slow.ws.resume()
      const more: BuiltFrame[] = await buildEvents(s.accounts, 301, 100, { padBytes: 2_000 })
      await feed(s.up, more, 200)
      await slow.until(() => slow.lastSeq() === 400, 'slow consumer caught up', 30_000)
      await fast.until(() => fast.lastSeq() === 400, 'fast consumer', 10_000)
      assert.deepEqual(slow.seqs(), range(1, 400), 'every event, in order, once')
      assert.deepEqual(fast.seqs(), range(1, 400))
      for (let i = 0; i < 400; i++) assert.deepEqual(slow.events()[i]!.bytes, fast.events()[i]!.bytes)
      assert.equal(slow.closed, null, 'not kicked')
      assert.ok(
        (await s.relay.metric('relay_firehose_frames_sent_total', { source: 'store' })) > 0,
        'part of the catch-up came from Postgres',
      )
      await waitFor(async () => (await s.relay.metric('relay_firehose_consumers', { mode: 'live' })) === 2 || undefined, {
        what: 'both live again',
      })
      assert.equal(await s.relay.metric('relay_firehose_consumer_kicks_total'), 0)
    } finally {
      await slow.close()
      await fast.close()
      await s.close()
    }
  })

  it('a consumer that keeps not reading gets ConsumerTooSlow and is closed; the fast one is unaffected', async () => {
    const s = await setup('fh_kick', {
      RELAY_CONSUMER_SOFT_LIMIT: '64KiB',
      RELAY_CONSUMER_HARD_LIMIT: '64KiB',
      RELAY_CONSUMER_TOO_SLOW_AFTER: '1s',
    })
    const stuck = await RawConsumer.open(s.relay.ws)
    const fast = await RawConsumer.open(s.relay.ws)
    try {
      stuck.ws.pause()
      const frames = await buildEvents(s.accounts, 1, 400, { padBytes: 60_000 })
      // a steady stream (~3 MB/s) so the stuck consumer falls further behind for seconds
      let kicked = false
      const feeding = feed(s.up, frames, 50, () => kicked)
      await waitFor(async () => (await s.relay.metric('relay_firehose_consumer_kicks_total', { reason: 'too_slow' })) === 1 || undefined, {
        what: 'ConsumerTooSlow kick',
        timeoutMs: 30_000,
      })
      kicked = true
      const sent = await feeding
      // the stuck consumer reads again: what its socket held, then the error frame and the close
      stuck.ws.resume()
      const closed = await stuck.closedP
      assert.equal(closed.code, 1008)
      assert.equal(closed.reason, 'ConsumerTooSlow')
      const lastMsg = stuck.msgs.at(-1)!
      assert.equal(lastMsg.op, -1)
      assert.equal(lastMsg.body.error, 'ConsumerTooSlow')
      // what it did get before the kick was a gapless prefix
      assert.deepEqual(stuck.seqs(), range(1, stuck.events().length))

      await fast.until(() => fast.events().length === sent, 'fast consumer gets everything', 30_000)
      assert.deepEqual(fast.seqs(), range(1, sent))
      assert.equal(fast.closed, null)
      assert.equal(await s.relay.metric('relay_firehose_consumer_kicks_total'), 1, 'only the stuck consumer was kicked')
    } finally {
      await stuck.close()
      await fast.close()
      await s.close()
    }
  })
})
