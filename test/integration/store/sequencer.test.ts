import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { decodeFirst } from '@atcute/cbor'
import { Registry } from 'prom-client'
import { createPool, type Pool } from '../../../src/core/db.ts'
import { EventLog } from '../../../src/store/event-log.ts'
import { boolArray, byteaArray, int2Array, int8Array, textArray } from '../../../src/store/pg-binary.ts'
import { Sequencer, type PersistedEvent, type SequencerOptions } from '../../../src/store/sequencer.ts'
import { createTestDatabase, type TestDatabase } from '../../helpers/db.ts'
import { cuttableProxy, insertAccount, insertHost, log, makeEvent, migratedPool, sleep } from './helpers.ts'

let db: TestDatabase
before(async () => {
  db = await createTestDatabase('seq')
})
after(async () => {
  await db.drop()
})

/** A fresh database per test, so seq expectations are absolute. */
async function fresh(): Promise<{ pool: Pool; drop: () => Promise<void>; url: string }> {
  const t = await createTestDatabase('seqt')
  const pool = await migratedPool(t.url)
  return {
    pool,
    url: t.url,
    drop: async () => {
      await pool.end()
      await t.drop()
    },
  }
}

function seqOf(frame: Uint8Array): number {
  const [, rest] = decodeFirst(frame)
  return decodeFirst(rest)[0].seq
}

async function started(opts: Partial<SequencerOptions> & { db: Pool }): Promise<Sequencer> {
  // STORE_INSERT_METHOD=values runs the suite against the alternative insert path.
  const insertMethod = process.env.STORE_INSERT_METHOD === 'values' ? 'values' : 'unnest'
  const s = new Sequencer({ log, registry: new Registry(), maxBatchDelayMs: 2, insertMethod, ...opts })
  await s.start()
  return s
}

test('seqs are strictly increasing and continuous in submission order across batches; frames carry them', async () => {
  const { pool, drop } = await fresh()
  try {
    const handed: PersistedEvent[] = []
    const seq = await started({ db: pool, maxBatchEvents: 7, onPersisted: (evs) => handed.push(...evs) })
    const dids = Array.from({ length: 50 }, (_, i) => `did:plc:u${i}`)
    const results = await Promise.all(dids.map((d, i) => seq.submit(makeEvent(d, { padBytes: 100, kind: i % 2 ? 'identity' : 'account' }))))
    assert.deepEqual(
      results.map((r) => r.seq),
      Array.from({ length: 50 }, (_, i) => i + 1),
    )
    assert.deepEqual(
      results.map((r) => r.did),
      dids,
    )
    assert.deepEqual(
      handed.map((e) => e.seq),
      results.map((r) => r.seq),
      'broadcaster sees the same order',
    )
    for (const r of results) assert.equal(seqOf(r.frame), r.seq)
    for (let i = 1; i < results.length; i++) assert.ok(results[i]!.time >= results[i - 1]!.time, 'time non-decreasing')

    const { rows } = await pool.query<{ seq: number; did: string; kind: number; frame: Buffer }>(
      'SELECT seq, did, kind, frame FROM event ORDER BY seq',
    )
    assert.equal(rows.length, 50)
    for (const [i, row] of rows.entries()) {
      assert.equal(row.seq, i + 1)
      assert.equal(row.did, dids[i])
      assert.equal(row.kind, i % 2 ? 3 : 4)
      assert.ok(row.frame.equals(results[i]!.frame), 'stored bytes are the broadcast bytes')
      assert.equal(seqOf(row.frame), row.seq)
    }
    assert.ok(
      (await seq.metrics.batchEvents.get()).values.find((v) => v.metricName === 'relay_store_batch_events_count')!.value >= 8,
      'at least 8 batches of ≤ 7',
    )
    assert.equal(seq.headSeq, 50)
    await seq.close()
    await assert.rejects(seq.submit(makeEvent('did:plc:late')), /closed/)
  } finally {
    await drop()
  }
})

test('seq continues after a restart, honours the initial-seq floor, and never reuses deleted seqs', async () => {
  const { pool, drop } = await fresh()
  try {
    let s = await started({ db: pool })
    await Promise.all([1, 2, 3].map((i) => s.submit(makeEvent(`did:plc:a${i}`))))
    await s.close()

    s = await started({ db: pool })
    assert.equal((await s.submit(makeEvent('did:plc:b'))).seq, 4)
    await s.close()

    s = await started({ db: pool, initialSeq: 1000 })
    assert.equal((await s.submit(makeEvent('did:plc:c'))).seq, 1000)
    assert.equal((await s.submit(makeEvent('did:plc:c'))).seq, 1001)
    await s.close()

    // A lower floor than the log changes nothing.
    s = await started({ db: pool, initialSeq: 5 })
    assert.equal((await s.submit(makeEvent('did:plc:taken'))).seq, 1002)
    await s.close()

    // The newest events are deleted by a takedown: the next seq still goes above them.
    const evlog = new EventLog({ db: pool, log, pruneIntervalMs: 0 })
    assert.equal(await evlog.hideAccount('did:plc:taken'), 1)
    assert.equal(await evlog.hideAccount('did:plc:c'), 2)
    s = await started({ db: pool })
    assert.equal((await s.submit(makeEvent('did:plc:d'))).seq, 1003)
    await s.close()
  } finally {
    await drop()
  }
})

test('account repo state advances only forward, across batches and within one; #sync may re-assert an equal rev', async () => {
  const { pool, drop } = await fresh()
  try {
    const host = await insertHost(pool, 'pds.example.com')
    await insertAccount(pool, 'did:plc:alice', host)
    await insertAccount(pool, 'did:plc:bob', host)
    const s = await started({ db: pool })
    const rs = (rev: string, c: string, extra = {}) => ({ rev, commitCid: 'commit-' + c, dataCid: 'data-' + c, ...extra })
    const state = async (did: string) =>
      (await pool.query('SELECT rev, commit_cid, data_cid, desynchronized FROM account WHERE did = $1', [did])).rows[0]

    await s.submit(makeEvent('did:plc:alice', { kind: 'commit', repoState: rs('3kaaaaaaaaab2', 'two') }))
    await s.submit(makeEvent('did:plc:alice', { kind: 'commit', repoState: rs('3kaaaaaaaaaa2', 'one') })) // later batch, older rev
    assert.deepEqual(await state('did:plc:alice'), {
      rev: '3kaaaaaaaaab2',
      commit_cid: 'commit-two',
      data_cid: 'data-two',
      desynchronized: false,
    })

    // Equal rev: ignored for a #commit, applied for a #sync flagged allowEqual (and it can clear desync).
    await pool.query(`UPDATE account SET desynchronized = true WHERE did = 'did:plc:alice'`)
    await s.submit(makeEvent('did:plc:alice', { kind: 'commit', repoState: rs('3kaaaaaaaaab2', 'dup') }))
    assert.equal((await state('did:plc:alice')).commit_cid, 'commit-two')
    await s.submit(
      makeEvent('did:plc:alice', { kind: 'sync', repoState: rs('3kaaaaaaaaab2', 'sync', { allowEqual: true, desynchronized: false }) }),
    )
    assert.deepEqual(await state('did:plc:alice'), {
      rev: '3kaaaaaaaaab2',
      commit_cid: 'commit-sync',
      data_cid: 'data-sync',
      desynchronized: false,
    })

    // Several for one DID in one batch: the highest rev wins whatever the order.
    await Promise.all([
      s.submit(makeEvent('did:plc:bob', { kind: 'commit', repoState: rs('3kbbbbbbbbbb3', 'b3') })),
      s.submit(makeEvent('did:plc:bob', { kind: 'commit', repoState: rs('3kbbbbbbbbbb5', 'b5') })),
      s.submit(makeEvent('did:plc:bob', { kind: 'commit', repoState: rs('3kbbbbbbbbbb4', 'b4') })),
      // no account row: the event is still logged, the state write is skipped and counted
      s.submit(makeEvent('did:plc:nobody', { kind: 'commit', repoState: rs('3kaaaaaaaaaa2', 'x') })),
    ])
    assert.equal((await state('did:plc:bob')).rev, '3kbbbbbbbbbb5')
    assert.ok((await s.metrics.repoStateSkipped.get()).values[0]!.value >= 3)
    await s.close()
  } finally {
    await drop()
  }
})

test('collection index: deltas accumulate and rows reaching zero are deleted', async () => {
  const { pool, drop } = await fresh()
  try {
    const s = await started({ db: pool })
    const d = (collection: string, delta: number) => ({ collection, delta })
    await Promise.all([
      s.submit(makeEvent('did:plc:a', { kind: 'commit', collectionDeltas: [d('app.bsky.feed.post', 1), d('app.bsky.feed.like', 2)] })),
      s.submit(makeEvent('did:plc:b', { kind: 'commit', collectionDeltas: [d('app.bsky.feed.post', 1)] })),
    ])
    await s.submit(makeEvent('did:plc:a', { kind: 'commit', collectionDeltas: [d('app.bsky.feed.like', -2), d('app.bsky.feed.post', 1)] }))
    await s.submit(
      makeEvent('did:plc:b', { kind: 'commit', collectionDeltas: [d('app.bsky.feed.post', -1), d('app.bsky.graph.follow', -1)] }),
    )
    const { rows } = await pool.query('SELECT collection, did, record_count FROM collection_repo ORDER BY collection, did')
    assert.deepEqual(rows, [{ collection: 'app.bsky.feed.post', did: 'did:plc:a', record_count: 2 }])
    await s.close()
  } finally {
    await drop()
  }
})

test('host cursors commit in the same transaction as the events; a failed transaction writes neither and is retried', async () => {
  const { pool, drop } = await fresh()
  try {
    const host = await insertHost(pool, 'pds.example.com', 100)
    const seen: Array<Map<number, number[]>> = []
    const committed: number[] = []
    const s = await started({
      db: pool,
      retryInitialMs: 20,
      retryMaxMs: 50,
      cursorProvider: (byHost) => {
        seen.push(byHost)
        const seqs = byHost.get(host)
        return seqs ? new Map([[host, { seq: Math.max(...seqs), doneAbove: [] }]]) : new Map()
      },
      onCommitted: (b) => committed.push(b.cursors.get(host)?.seq ?? -1),
      cursorFlushIntervalMs: 0,
    })
    await s.submit(makeEvent('did:plc:a', { hostId: host, upstreamSeq: 101 }))
    assert.equal((await pool.query('SELECT last_seq FROM host WHERE id = $1', [host])).rows[0].last_seq, 101)

    // Make every event insert fail: the batch must leave no trace, and keep being retried.
    await pool.query(`CREATE FUNCTION fail_event() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$`)
    await pool.query('CREATE TRIGGER fail_event BEFORE INSERT ON event FOR EACH ROW EXECUTE FUNCTION fail_event()')
    let settled = false
    const p = Promise.all([
      s.submit(makeEvent('did:plc:b', { hostId: host, upstreamSeq: 102 })),
      s.submit(makeEvent('did:plc:c', { hostId: host, upstreamSeq: 105 })),
    ]).finally(() => (settled = true))
    await sleep(300)
    assert.equal(settled, false, 'submitters wait while the batch cannot commit')
    assert.equal((await pool.query('SELECT count(*)::int AS n FROM event')).rows[0].n, 1)
    assert.equal(
      (await pool.query('SELECT last_seq FROM host WHERE id = $1', [host])).rows[0].last_seq,
      101,
      'cursor not advanced without its events',
    )
    assert.ok((await s.metrics.retries.get()).values[0]!.value >= 2)
    assert.equal(s.pendingEvents, 2)

    await pool.query('DROP TRIGGER fail_event ON event')
    const [b, c] = await p
    assert.deepEqual([b.seq, c.seq], [2, 3], 'the failed attempt reused nothing visible; seqs stay continuous')
    assert.equal((await pool.query('SELECT count(*)::int AS n FROM event')).rows[0].n, 3)
    assert.equal((await pool.query('SELECT last_seq FROM host WHERE id = $1', [host])).rows[0].last_seq, 105)
    assert.equal(seen.length, 2, 'the provider is asked once per batch, not per attempt')
    assert.deepEqual(committed, [101, 105])
    await s.close()
  } finally {
    await drop()
  }
})

test('the done list above a host cursor is written with it, rewritten at an equal cursor, and only for pinned events', async () => {
  const { pool, drop } = await fresh()
  try {
    const host = await insertHost(pool, 'pds.example.com', 100)
    const asked: Array<[number[], number[]]> = []
    let answer = { seq: 100, doneAbove: [103] }
    const s = await started({
      db: pool,
      cursorFlushIntervalMs: 0,
      cursorProvider: (byHost, pinned) => {
        asked.push([byHost.get(host) ?? [], pinned.get(host) ?? []])
        return new Map([[host, answer]])
      },
    })
    const row = async () => (await pool.query('SELECT last_seq, done_above::float8[] AS above FROM host WHERE id = $1', [host])).rows[0]
    await Promise.all([
      s.submit(makeEvent('did:plc:a', { hostId: host, upstreamSeq: 102, kind: 'commit' })),
      s.submit(makeEvent('did:plc:b', { hostId: host, upstreamSeq: 103, kind: 'identity' })),
    ])
    assert.deepEqual(
      [asked.flatMap((a) => a[0]), asked.flatMap((a) => a[1])],
      [[102, 103], [103]],
      'the provider is told which seqs are not commits',
    )
    assert.deepEqual(await row(), { last_seq: 100, above: [103] }, 'an equal cursor still writes the list')
    answer = { seq: 104, doneAbove: [] }
    await s.submit(makeEvent('did:plc:c', { hostId: host, upstreamSeq: 104, kind: 'account' }))
    assert.deepEqual(await row(), { last_seq: 104, above: [] })
    await s.close()
  } finally {
    await drop()
  }
})

test('host cursor never moves backwards, and cursor-only progress is flushed periodically and on close', async () => {
  const { pool, drop } = await fresh()
  try {
    const h1 = await insertHost(pool, 'one.example.com', 500)
    const h2 = await insertHost(pool, 'two.example.com', 10)
    let safe = new Map([
      [h1, { seq: 400, doneAbove: [] }],
      [h2, { seq: 20, doneAbove: [] }],
    ])
    const s = await started({ db: pool, cursorProvider: () => safe, cursorFlushIntervalMs: 50 })
    const last = async (id: number) => (await pool.query('SELECT last_seq FROM host WHERE id = $1', [id])).rows[0].last_seq
    for (let i = 0; i < 50 && (await last(h2)) !== 20; i++) await sleep(20)
    assert.equal(await last(h2), 20, 'periodic flush wrote progress with no events at all')
    assert.equal(await last(h1), 500, 'a lower cursor never overwrites a higher one')
    safe = new Map([[h2, { seq: 30, doneAbove: [] }]])
    await s.close()
    assert.equal(await last(h2), 30, 'close writes the final cursors')
  } finally {
    await drop()
  }
})

test('Postgres outage: submitters wait, nothing is lost, the batch commits once the database is back', async () => {
  const { pool: direct, drop, url } = await fresh()
  const proxy = await cuttableProxy(url)
  const pool = createPool(proxy.url, { max: 2, log })
  // connections through a cut proxy fail fast (refused) or hang until this timeout
  ;(pool as unknown as { options: { connectionTimeoutMillis: number } }).options.connectionTimeoutMillis = 500
  try {
    const host = await insertHost(direct, 'pds.example.com')
    const s = await started({
      db: pool,
      retryInitialMs: 20,
      retryMaxMs: 100,
      queryTimeoutMs: 1000,
      cursorProvider: (m) => new Map([...m].map(([h, v]) => [h, { seq: Math.max(...v), doneAbove: [] }])),
    })
    assert.equal((await s.submit(makeEvent('did:plc:a', { hostId: host, upstreamSeq: 1 }))).seq, 1)

    proxy.cut()
    let done = 0
    const ps = Array.from({ length: 20 }, (_, i) =>
      s.submit(makeEvent(`did:plc:x${i}`, { hostId: host, upstreamSeq: 2 + i })).then((r) => (done++, r)),
    )
    await sleep(600)
    assert.equal(done, 0, 'nothing acknowledged while the database is unreachable')
    assert.ok(s.pendingBytes > 0)
    let roomed = false
    const room = s.whenBelow(0).then(() => (roomed = true))
    assert.equal(roomed, false)

    proxy.restore()
    const results = await Promise.all(ps)
    await room
    assert.deepEqual(
      results.map((r) => r.seq),
      Array.from({ length: 20 }, (_, i) => i + 2),
    )
    assert.equal(s.pendingBytes, 0)
    const { rows } = await direct.query('SELECT count(*)::int AS n, max(seq)::int AS mx FROM event')
    assert.deepEqual(rows[0], { n: 21, mx: 21 })
    assert.equal((await direct.query('SELECT last_seq FROM host WHERE id = $1', [host])).rows[0].last_seq, 21)
    assert.ok((await s.metrics.retries.get()).values[0]!.value >= 1)
    await s.close()
  } finally {
    await pool.end()
    await proxy.close()
    await drop()
  }
})

test('flush() skips the batch delay; close() persists everything accepted; malformed events are refused up front', async () => {
  const { pool, drop } = await fresh()
  try {
    const s = new Sequencer({ db: pool, log, maxBatchDelayMs: 60_000, maxPendingEvents: 5 })
    // submitted before start: queued, sequenced once the counter is restored
    const early = s.submit(makeEvent('did:plc:early'))
    await s.start()
    const a = s.submit(makeEvent('did:plc:a'))
    await s.flush()
    assert.equal((await early).seq, 1)
    assert.equal((await a).seq, 2)
    const many = Array.from({ length: 8 }, (_, i) => s.submit(makeEvent(`did:plc:m${i}`)))
    assert.equal(s.hasRoom(), false)
    assert.ok((await s.metrics.overCapacity.get()).values[0]!.value >= 3)
    await assert.rejects(s.submit({ ...makeEvent('did:plc:bad'), seqOffset: 0 }), /placeholder/)
    await s.close()
    assert.deepEqual(
      (await Promise.all(many)).map((r) => r.seq),
      [3, 4, 5, 6, 7, 8, 9, 10],
    )
    assert.equal((await pool.query('SELECT count(*)::int AS n FROM event')).rows[0].n, 10)
  } finally {
    await drop()
  }
})

test('a commit whose acknowledgement is lost is detected on retry: no duplicate, no stall', async () => {
  const { pool, drop } = await fresh()
  try {
    // Which statement "commits and then loses its reply": the batch statement itself (autocommit
    // batches) or the explicit COMMIT (batches that also prune collection rows).
    let loseAckOn: 'main' | 'commit' | undefined
    const flaky = {
      query: pool.query.bind(pool),
      async connect() {
        const client = await pool.connect()
        return new Proxy(client, {
          get(target, prop, recv) {
            if (prop !== 'query') return Reflect.get(target, prop, recv)
            return async (...args: unknown[]) => {
              const res = await (target.query as (...a: unknown[]) => Promise<unknown>)(...args)
              const cfg = (typeof args[0] === 'string' ? { text: args[0] } : args[0]) as { text: string; name?: string }
              const hit = (loseAckOn === 'commit' && cfg.text === 'COMMIT') || (loseAckOn === 'main' && cfg.text.startsWith('WITH'))
              if (hit) {
                loseAckOn = undefined
                throw new Error('Connection terminated unexpectedly')
              }
              return res
            }
          },
        })
      },
    } as unknown as Pool
    const s = await started({ db: flaky, retryInitialMs: 10 })
    await s.submit(makeEvent('did:plc:a'))
    loseAckOn = 'main'
    assert.equal((await s.submit(makeEvent('did:plc:b'))).seq, 2)
    await s.submit(makeEvent('did:plc:c', { collectionDeltas: [{ collection: 'x.y', delta: 2 }] }))
    loseAckOn = 'commit'
    assert.equal((await s.submit(makeEvent('did:plc:c', { collectionDeltas: [{ collection: 'x.y', delta: -1 }] }))).seq, 4)
    assert.equal((await s.submit(makeEvent('did:plc:d'))).seq, 5)
    assert.deepEqual((await pool.query('SELECT seq, did FROM event ORDER BY seq')).rows, [
      { seq: 1, did: 'did:plc:a' },
      { seq: 2, did: 'did:plc:b' },
      { seq: 3, did: 'did:plc:c' },
      { seq: 4, did: 'did:plc:c' },
      { seq: 5, did: 'did:plc:d' },
    ])
    assert.equal((await pool.query('SELECT record_count FROM collection_repo')).rows[0].record_count, 1, 'delta applied exactly once')
    assert.equal((await s.metrics.retries.get()).values[0]!.value, 2)
    await s.close()
  } finally {
    await drop()
  }
})

test('binary array parameters round-trip through Postgres', async () => {
  const pool = await migratedPool(db.url, 1)
  try {
    const ints = [0, 1, -1, 2 ** 31, -(2 ** 31) - 1, 2 ** 53 - 1, -(2 ** 53) + 1]
    const texts = ['', 'did:plc:abc', 'héllo ☃ 𝄞']
    const bytes = [Buffer.alloc(0), Buffer.from([0, 255, 1]), Buffer.alloc(3000, 9)]
    const { rows } = await pool.query(
      'SELECT $1::bigint[]::text AS i8, $2::smallint[] AS i2, $3::text[] AS t, $4::bytea[] AS b, $5::boolean[] AS bo, $6::bigint[] AS empty, cardinality($6::bigint[]) AS n',
      [int8Array(ints), int2Array([0, -5, 32767]), textArray(texts), byteaArray(bytes), boolArray([true, null, false]), int8Array([])],
    )
    const r = rows[0]
    assert.equal(r.i8, `{${ints.join(',')}}`)
    assert.deepEqual(r.i2, [0, -5, 32767])
    assert.deepEqual(r.t, texts)
    assert.equal(r.b.length, 3)
    assert.equal(r.n, 0)
    assert.deepEqual(r.bo, [true, null, false])
  } finally {
    await pool.end()
  }
})

test('waitForRoom wakes waiters in arrival order, only as many per turn as the freed room takes, and none is left behind', async () => {
  const { pool, drop } = await fresh()
  const registry = new Registry()
  const microtasks = async () => {
    for (let i = 0; i < 10; i++) await null
  }
  const nextTurn = () => new Promise((r) => setImmediate(r))
  try {
    const s = new Sequencer({ db: pool, log, registry, maxBatchDelayMs: 60_000, maxPendingEvents: 10 })
    await s.start()
    const first = Array.from({ length: 10 }, (_, i) => s.submit(makeEvent(`did:plc:fill${i}`)))
    assert.equal(s.hasRoom(), false)
    const woken: number[] = []
    const waits = Array.from({ length: 50 }, (_, i) => s.waitForRoom().then(() => woken.push(i)))
    await microtasks()
    assert.deepEqual(woken, [])
    assert.match(await registry.metrics(), /^relay_store_room_waiters 50$/m)

    // a commit frees 10 events of room: 10 waiters, the first 10, and no more in this turn
    await s.flush()
    await Promise.all(first)
    await microtasks()
    assert.deepEqual(woken, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    // they take the room: the next turn wakes nobody until the next commit
    const second = woken.map((i) => s.submit(makeEvent(`did:plc:w${i}`)))
    await nextTurn()
    await nextTurn()
    assert.equal(woken.length, 10)
    await s.flush()
    await Promise.all(second)
    await microtasks()
    assert.deepEqual(woken.slice(10), [10, 11, 12, 13, 14, 15, 16, 17, 18, 19])
    // woken waiters that submit nothing: the room is still there, the rest follow turn by turn
    // without any further commit
    for (let turn = 0; turn < 4 && woken.length < 50; turn++) await nextTurn()
    await Promise.all(waits)
    assert.deepEqual(
      woken,
      Array.from({ length: 50 }, (_, i) => i),
    )
    assert.match(await registry.metrics(), /^relay_store_room_waiters 0$/m)
    // with room and nobody queued, a caller does not wait at all
    let immediate = false
    void s.waitForRoom().then(() => (immediate = true))
    await microtasks()
    assert.equal(immediate, true)
    await s.close()
  } finally {
    await drop()
  }
})
