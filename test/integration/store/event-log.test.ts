import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { Registry } from 'prom-client'
import type { Pool } from '../../../src/core/db.ts'
import { Accounts } from '../../../src/store/accounts.ts'
import { EventLog } from '../../../src/store/event-log.ts'
import { Sequencer } from '../../../src/store/sequencer.ts'
import { createTestDatabase, type TestDatabase } from '../../helpers/db.ts'
import { insertHost, log, makeEvent, migratedPool } from './helpers.ts'

let db: TestDatabase
let pool: Pool
before(async () => {
  db = await createTestDatabase('evlog')
  pool = await migratedPool(db.url)
})
after(async () => {
  await pool.end()
  await db.drop()
})

async function reset(): Promise<void> {
  await pool.query('TRUNCATE event')
  await pool.query('UPDATE event_log_state SET max_deleted_seq = 0, pruned_through = 0')
}

async function fill(n: number, did = (i: number) => `did:plc:u${i % 3}`, initialSeq = 1): Promise<Sequencer> {
  const s = new Sequencer({ db: pool, log, maxBatchEvents: 40, maxBatchDelayMs: 1, initialSeq })
  await s.start()
  await Promise.all(Array.from({ length: n }, (_, i) => s.submit(makeEvent(did(i), { padBytes: 20 }))))
  await s.close()
  return s
}

test('readAfter pages through the log in seq order, seq > cursor, with the frames as stored', async () => {
  await reset()
  await fill(250)
  const evlog = new EventLog({ db: pool, log, pruneIntervalMs: 0 })
  await evlog.start()
  const seen: number[] = []
  let cursor = 0
  for (;;) {
    const page = await evlog.readAfter(cursor, 64)
    if (page.length === 0) break
    assert.ok(page.length <= 64)
    for (const e of page) {
      assert.ok(e.frame instanceof Buffer && e.frame.length > 0)
      // its own allocation, not a slice of Node's shared Buffer pool (a cached page would pin slabs)
      assert.equal(e.frame.buffer.byteLength, e.frame.length)
      assert.equal(e.kind, 'identity')
      assert.ok(Math.abs(e.time - Date.now()) < 60_000)
      seen.push(e.seq)
    }
    cursor = page.at(-1)!.seq
  }
  assert.deepEqual(
    seen,
    Array.from({ length: 250 }, (_, i) => i + 1),
  )
  assert.deepEqual(
    (await evlog.readRange(248, 10)).map((e) => e.seq),
    [249, 250],
  )
  assert.deepEqual(await evlog.readAfter(250, 10), [])
  assert.equal(await evlog.oldestSeq(), 1)
  assert.equal(await evlog.headSeq(), 250)
  assert.equal((await evlog.oldestTimeSeq())!.seq, 1)
  assert.equal(evlog.prunedThrough(), 0)
  await evlog.stop()
})

test('pruneOlderThan deletes only the old prefix, in small statements, and moves the low-water mark', async () => {
  await reset()
  await fill(1000)
  // Age the first 730 events by two hours (created_at stays non-decreasing in seq).
  await pool.query(`UPDATE event SET created_at = created_at - interval '2 hours' WHERE seq <= 730`)
  const registry = new Registry()
  const evlog = new EventLog({ db: pool, log, registry, pruneIntervalMs: 0, pruneBatchRows: 100, prunePauseMs: 0 })
  await evlog.start()
  assert.equal(await evlog.pruneOlderThan(3600_000), 730)
  assert.equal(evlog.prunedThrough(), 730)
  assert.equal(await evlog.oldestSeq(), 731)
  assert.equal(evlog.isOutdated(700), true)
  assert.equal(evlog.isOutdated(730), false)
  assert.match(await registry.metrics(), /relay_store_pruned_events_total 730/)
  assert.equal(await evlog.pruneOlderThan(3600_000), 0, 'nothing more to prune')
  await evlog.stop()

  // The mark survives a restart, and the sequencer continues above everything.
  const again = new EventLog({ db: pool, log, pruneIntervalMs: 0 })
  await again.start()
  assert.equal(again.prunedThrough(), 730)
  // Everything ages out: the log is empty, yet the seq must not restart low.
  await pool.query(`UPDATE event SET created_at = created_at - interval '2 hours'`)
  assert.equal(await again.runRetention(), 0, 'default 72 h window keeps them')
  assert.equal(await again.pruneOlderThan(3600_000), 270)
  assert.equal(await again.oldestTimeSeq(), undefined)
  const s = new Sequencer({ db: pool, log })
  await s.start()
  assert.equal(s.nextSequence, 1001)
  await s.close()
})

test('periodic retention runs on its interval', async () => {
  await reset()
  await fill(30)
  await pool.query(`UPDATE event SET created_at = created_at - interval '2 hours' WHERE seq <= 10`)
  const evlog = new EventLog({ db: pool, log, retentionMs: 3600_000, pruneIntervalMs: 30 })
  await evlog.start()
  for (let i = 0; i < 100 && evlog.prunedThrough() < 10; i++) await new Promise((r) => setTimeout(r, 20))
  await evlog.stop()
  assert.equal(evlog.prunedThrough(), 10)
  assert.equal(await evlog.oldestSeq(), 11)
})

test('hideAccount removes a DID from replay; later events for it are served; throughSeq keeps newer ones', async () => {
  await reset()
  await fill(30, (i) => (i % 2 ? 'did:plc:bad' : 'did:plc:good'))
  const evlog = new EventLog({ db: pool, log, pruneIntervalMs: 0, pruneBatchRows: 4 })
  await evlog.start()
  assert.equal(await evlog.hideAccount('did:plc:bad', { throughSeq: 20 }), 10)
  assert.equal(await evlog.hideAccount('did:plc:bad'), 5)
  const all = await evlog.readAfter(0, 1000)
  assert.equal(all.length, 15)
  assert.ok(all.every((e) => e.did === 'did:plc:good'))
  assert.equal(evlog.prunedThrough(), 0, 'takedowns do not move the retention mark')

  const s = new Sequencer({ db: pool, log })
  await s.start()
  const back = await s.submit(makeEvent('did:plc:bad', { kind: 'account' }))
  await s.close()
  assert.equal(back.seq, 31)
  assert.deepEqual(
    (await evlog.readAfter(29, 10)).map((e) => [e.seq, e.did]),
    [[31, 'did:plc:bad']],
  )
  await evlog.stop()
})

test('accounts: state lookup, creation and status helpers', async () => {
  const host = await insertHost(pool, 'acct.example.com')
  const accounts = new Accounts(pool)
  assert.equal(await accounts.getAccountState('did:plc:none'), undefined)
  const created = await accounts.ensureAccount('did:plc:acct', host)
  assert.deepEqual(
    { ...created, uid: 0 },
    {
      uid: 0,
      did: 'did:plc:acct',
      hostId: host,
      status: 'active',
      upstreamStatus: 'active',
      rev: null,
      commitCid: null,
      dataCid: null,
      desynchronized: false,
    },
  )
  assert.equal((await accounts.ensureAccount('did:plc:acct', host + 999)).hostId, host, 'existing row unchanged')
  assert.equal(await accounts.setStatus('did:plc:acct', 'takendown'), true)
  assert.equal(await accounts.setUpstreamStatus('did:plc:acct', 'deactivated'), true)
  assert.equal(await accounts.setDesynchronized('did:plc:acct', true), true)
  assert.equal(await accounts.setStatus('did:plc:none', 'takendown'), false)
  const s = await accounts.getAccountState('did:plc:acct')
  assert.deepEqual([s!.status, s!.upstreamStatus, s!.desynchronized], ['takendown', 'deactivated', true])
  const many = await accounts.getAccountStates(['did:plc:acct', 'did:plc:none'])
  assert.deepEqual([...many.keys()], ['did:plc:acct'])
})
