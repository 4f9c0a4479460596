// Cursor semantics through the whole relay, against the event log in Postgres:
// - replay from a cursor older than the ring (RELAY_RING_MAX_FRAMES=100, the minimum) comes from
//   Postgres in pages and hands over to live without a gap or a duplicate while events keep coming;
// - a cursor below what retention kept gets `#info OutdatedCursor` then replay from the oldest
//   retained event (the log starts with 20 events two hours old, pruned by a 60 s replay window);
// - FutureCursor: error frame, close 1008; malformed cursors: HTTP 400 before the upgrade;
//   `cursor=` (empty): live.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { migrate } from '../../../src/core/migrate.ts'
import { createPool } from '../../../src/core/db.ts'
import { createTestDatabase, type TestDatabase } from '../../helpers/db.ts'
import { FakeUpstream } from '../../helpers/fake-upstream.ts'
import { waitFor } from '../../helpers/relay-process.ts'
import {
  buildEvents,
  createSignedAccount,
  DidServer,
  randomPlcDid,
  type BuiltFrame,
  type SignedAccount,
} from '../../helpers/signed-repo.ts'
import { encodeFrame } from '../../unit/validator/helpers.ts'
import {
  addUpstream,
  builtKey,
  feed,
  log,
  range,
  RawConsumer,
  readLog,
  relayEnv,
  startInProcessRelay,
  syncFirehose,
  SUBSCRIBE,
  adminAuth,
  type InProcessRelay,
} from './helpers.ts'
import { closeConsumers } from './helpers.ts'

const OLD = 20 // events already in the log, two hours old

let tdb: TestDatabase
let dids: DidServer
let up: FakeUpstream
let relay: InProcessRelay
let accounts: SignedAccount[]
let nextSeq = 1 // next upstream seq

before(async () => {
  tdb = await createTestDatabase('fh_cursor')
  // A log left by an earlier run: seqs 1..20, two hours old (beyond the 60 s replay window).
  const pool = createPool(tdb.url, { max: 2, log })
  try {
    await migrate(pool, log)
    const did = randomPlcDid()
    for (let seq = 1; seq <= OLD; seq++) {
      const time = new Date(Date.now() - 2 * 3600_000).toISOString()
      await pool.query(`INSERT INTO event (seq, did, kind, created_at, frame) VALUES ($1, $2, 3, $3, $4)`, [
        seq,
        did,
        time,
        encodeFrame('#identity', { seq, did, time }),
      ])
    }
  } finally {
    await pool.end()
  }
  dids = await DidServer.start()
  up = await FakeUpstream.start()
  accounts = []
  for (let i = 0; i < 5; i++) accounts.push(await createSignedAccount(dids, `http://${up.hostname}`))
  relay = await startInProcessRelay(
    relayEnv(tdb.url, dids.url, up, {
      RELAY_RING_MAX_FRAMES: '100',
      RELAY_REPLAY_PAGE_SIZE: '64',
      RELAY_REPLAY_WINDOW: '60s',
      RELAY_PRUNE_INTERVAL: '1s',
    }),
  )
  await addUpstream(relay, up)
})

after(async () => {
  await closeConsumers()
  await relay?.close()
  await up?.close()
  await dids?.close()
  await tdb?.drop()
})

async function build(n: number): Promise<BuiltFrame[]> {
  const frames = await buildEvents(accounts, nextSeq, n, { identityEvery: 10 })
  nextSeq += n
  return frames
}

async function produce(n: number, perSecond = 0): Promise<string[]> {
  const frames = await build(n)
  await feed(up, frames, perSecond)
  return frames.map(builtKey)
}

async function relayHead(): Promise<number> {
  const rows = await relay.query<{ seq: string | null }>('SELECT max(seq) AS seq FROM event')
  return Number(rows[0]!.seq ?? 0)
}

describe('cursors', () => {
  it('retention pruned the old events; relay seqs continue above them', async () => {
    await waitFor(
      async () => {
        const rows = await relay.query<{ pruned_through: string }>('SELECT pruned_through FROM event_log_state')
        return Number(rows[0]!.pruned_through) === OLD || undefined
      },
      { what: 'old events pruned', timeoutMs: 10_000 },
    )
    const live = await RawConsumer.open(relay.ws)
    try {
      await produce(10)
      await live.until(() => live.events().length === 10, '10 live events')
      assert.deepEqual(live.seqs(), range(OLD + 1, OLD + 10))
    } finally {
      await live.close()
    }
  })

  it('replay from Postgres across the ring boundary, then live, with no gap and no duplicate while events keep arriving', async () => {
    const keys = await produce(500)
    const first = OLD + 11
    await waitFor(async () => (await relayHead()) >= first + 499 || undefined, { what: '500 events persisted', timeoutMs: 30_000 }).catch(
      async (err) => {
        const diag = (await relay.relay.registry.metrics())
          .split('\n')
          .filter((l) => /^relay_(identity|validator|events_dropped)/.test(l) && !/ 0$/.test(l))
        const inLog = new Set((await readLog((sql) => relay.query(sql))).map((r) => r.key))
        throw new Error(
          `${err.message}: head ${await relayHead()}, missing ${JSON.stringify(keys.map((k, i) => [i, k]).filter(([, k]) => !inLog.has(k as string)))} of accounts ${JSON.stringify(accounts.map((a) => a.did))}\n${diag.join('\n')}`,
        )
      },
    )
    const head = await relayHead()

    // The producer keeps going while the consumers replay (frames built beforehand, so the
    // replay and the live stream overlap).
    const moreFrames = await build(200)
    const producing = feed(up, moreFrames, 300)
    const fromStore = await RawConsumer.open(relay.ws, first + 20) // 480 behind: Postgres
    const fromRing = await RawConsumer.open(relay.ws, head - 40) // inside the 100-frame ring
    const fh = syncFirehose(relay.ws, dids.url, { cursor: first + 100 })
    try {
      await producing
      const more = moreFrames.map(builtKey)
      const last = head + 200
      const explain = async (err: Error) => {
        const diag = (await relay.relay.registry.metrics())
          .split('\n')
          .filter((l) => /^relay_(events_dropped|firehose_consumers|firehose_mode|firehose_frames_sent)/.test(l) && !/ 0$/.test(l))
        // events_consumed = frames the relay wrote to each consumer's socket
        const consumers = await (await fetch(`${relay.base}/admin/consumers/list`, { headers: { authorization: adminAuth } })).text()
        throw new Error(
          `${err.message}: consumers ${consumers}; log head ${await relayHead()}, upstream head ${up.head}, ring consumer at ${fromRing.lastSeq()}\n${diag.join('\n')}`,
        )
      }
      await fromStore.until(() => fromStore.lastSeq() === last, 'store replay reaches the head', 30_000).catch(explain)
      await fromRing.until(() => fromRing.lastSeq() === last, 'ring replay reaches the head', 30_000).catch(explain)
      await waitFor(() => fh.events.at(-1)?.seq === last || fh.errors.length > 0 || undefined, {
        what: 'Firehose reaches the head',
        timeoutMs: 30_000,
      })
      await new Promise((r) => setTimeout(r, 200))

      assert.deepEqual(fromStore.seqs(), range(first + 21, last), 'store → ring → live: exact seq sequence')
      assert.deepEqual(fromRing.seqs(), range(head - 39, last), 'ring → live: exact seq sequence')
      assert.equal(fromStore.msgs.length, fromStore.events().length, 'no #info for a retained cursor')
      // what was replayed is what the log holds, byte for byte, and every upstream event once
      const logRows = await readLog((sql) => relay.query(sql))
      const bySeq = new Map(logRows.map((r) => [r.seq, r]))
      for (const m of fromStore.events()) assert.deepEqual(m.bytes, bySeq.get(m.seq!)!.frame, `seq ${m.seq} bytes`)
      const all = [...keys, ...more]
      assert.deepEqual(
        logRows
          .filter((r) => r.seq >= first)
          .map((r) => r.key)
          .sort(),
        [...all].sort(),
      )

      assert.deepEqual(
        fh.errors.map((e) => `${e.name}: ${e.message}`),
        [],
        'Firehose: no errors through replay and live',
      )
      const fhSeqs = fh.events.map((e) => e.seq)
      assert.deepEqual(fhSeqs, range(first + 101, last), 'Firehose: every event after its cursor, in order (one op per commit)')

      assert.ok((await relay.metric('relay_firehose_connections_total', { outcome: 'replay_store' })) >= 2)
      assert.ok((await relay.metric('relay_firehose_frames_sent_total', { source: 'store' })) >= 380, 'served from Postgres')
    } finally {
      await fromStore.close()
      await fromRing.close()
      await fh.destroy()
    }
  })

  it('a cursor below the retained range gets #info OutdatedCursor, then replay from the oldest event', async () => {
    const head = await relayHead()
    const outdated = await RawConsumer.open(relay.ws, 5)
    const edge = await RawConsumer.open(relay.ws, OLD) // exactly at the pruned edge: nothing missed
    try {
      await outdated.until(() => outdated.lastSeq() === head, 'outdated replay reaches the head', 30_000)
      await edge.until(() => edge.lastSeq() === head, 'edge replay reaches the head', 30_000)
      const info = outdated.msgs[0]!
      assert.equal(info.op, 1)
      assert.equal(info.t, '#info')
      assert.deepEqual(info.body, { name: 'OutdatedCursor', message: 'Requested cursor exceeded limit. Possibly missing events' })
      assert.deepEqual(outdated.seqs(), range(OLD + 1, head))
      assert.equal(outdated.msgs.filter((m) => m.t === '#info').length, 1)
      assert.notEqual(edge.msgs[0]!.t, '#info')
      assert.deepEqual(edge.seqs(), range(OLD + 1, head))
      // and then live
      await produce(3)
      await outdated.until(() => outdated.lastSeq() === head + 3, 'live after the outdated replay')
      assert.deepEqual(outdated.seqs(), range(OLD + 1, head + 3))
    } finally {
      await outdated.close()
      await edge.close()
    }
  })

  it('FutureCursor: error frame then close 1008', async () => {
    const head = await relayHead()
    const c = new RawConsumer(relay.ws, head + 1)
    const closed = await c.closedP
    assert.deepEqual(closed, { code: 1008, reason: 'FutureCursor' })
    assert.equal(c.msgs.length, 1)
    assert.equal(c.msgs[0]!.op, -1)
    assert.equal(c.msgs[0]!.t, undefined, 'error frames have no t')
    assert.equal(c.msgs[0]!.body.error, 'FutureCursor')
    // the head itself is fine: live
    const atHead = await RawConsumer.open(relay.ws, head)
    try {
      await produce(1)
      await atHead.until(() => atHead.events().length === 1, 'live after cursor=head')
      assert.deepEqual(atHead.seqs(), [head + 1])
      assert.equal(atHead.msgs.length, 1)
    } finally {
      await atHead.close()
    }
  })

  it('malformed cursors are refused with HTTP 400 InvalidRequest before the upgrade', async () => {
    for (const bad of ['-1', 'abc', '1.5', '1e3', '0x10', ' 5']) {
      const status = await refusedStatus(`${relay.ws}${SUBSCRIBE}?cursor=${encodeURIComponent(bad)}`)
      assert.equal(status.status, 400, `cursor=${bad}`)
      assert.equal((status.body as { error: string }).error, 'InvalidRequest', `cursor=${bad}`)
    }
  })

  it('an empty cursor is live', async () => {
    const head = await relayHead()
    const c = await RawConsumer.open(relay.ws, '')
    try {
      await new Promise((r) => setTimeout(r, 300))
      assert.equal(c.msgs.length, 0, 'nothing replayed')
      await produce(2)
      await c.until(() => c.events().length === 2, 'live events')
      assert.deepEqual(c.seqs(), [head + 1, head + 2])
    } finally {
      await c.close()
    }
  })
})

async function refusedStatus(url: string): Promise<{ status: number; body: unknown }> {
  const { WebSocket } = await import('ws')
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    ws.on('error', () => {})
    ws.once('open', () => {
      ws.terminate()
      reject(new Error(`upgrade unexpectedly accepted: ${url}`))
    })
    ws.once('unexpected-response', (_req, res) => {
      let data = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (data += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(data) }))
    })
  })
}
