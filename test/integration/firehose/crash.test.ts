// SIGKILL of the relay process while it ingests, then a restart on the same database:
// - everything any consumer received before the crash is in the log with the same seq and bytes
//   (persist before broadcast), relay seqs continue without reuse;
// - the upstream is resumed from the persisted cursor; every upstream event is in the log exactly
//   once (identified by (did, rev) for commits, (did, time) for #identity/#account);
// - consumers resuming from their last seq (a raw one, and @atproto/sync's Firehose reconnecting
//   by itself) see every later event exactly once.
// The second test holds one DID's validation in one shard (its DID document is slow to resolve)
// while the other shard persists events with higher upstream seqs, and kills the relay then: the
// saved upstream cursor is below events already persisted, which the upstream sends again.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { shardOf } from '../../../src/pool/sharded-pool.ts'
import { createTestDatabase, type TestDatabase } from '../../helpers/db.ts'
import { FakeUpstream } from '../../helpers/fake-upstream.ts'
import { waitFor } from '../../helpers/relay-process.ts'
import {
  accountEventFrame,
  buildEvents,
  commitFrame,
  createSignedAccount,
  DidServer,
  identityEventFrame,
  type BuiltFrame,
  type SignedAccount,
} from '../../helpers/signed-repo.ts'
import {
  addUpstream,
  assertSameEvents,
  builtKey,
  duplicates,
  feed,
  probeMetric,
  range,
  RawConsumer,
  readLog,
  relayEnv,
  startChildRelay,
  syncFirehose,
  withPg,
  type ChildRelay,
  type LogRow,
} from './helpers.ts'
import { closeConsumers } from './helpers.ts'

let dids: DidServer
const cleanups: Array<() => Promise<void>> = []

before(async () => {
  dids = await DidServer.start()
})
after(async () => {
  await closeConsumers()
  for (const c of cleanups.reverse()) await c().catch(() => {})
  await dids?.close()
})

async function setup(prefix: string) {
  const tdb = await createTestDatabase(prefix)
  const up = await FakeUpstream.start()
  let relay: ChildRelay | undefined
  cleanups.push(async () => {
    relay?.proc.proc.kill('SIGKILL')
    await up.close()
    await tdb.drop()
  })
  const log = (): Promise<LogRow[]> => withPg(tdb.url, (c) => readLog(async (sql) => (await c.query(sql)).rows))
  const hostCursor = () =>
    withPg(tdb.url, async (c) =>
      Number((await c.query('SELECT last_seq FROM host WHERE hostname = $1', [up.hostname])).rows[0]?.last_seq ?? -2),
    )
  return {
    tdb,
    up,
    log,
    hostCursor,
    get relay() {
      return relay!
    },
    set relay(r: ChildRelay) {
      relay = r
    },
  }
}

async function kill(relay: ChildRelay): Promise<void> {
  relay.proc.proc.kill('SIGKILL')
  const exit = await relay.proc.exited
  assert.equal(exit.signal, 'SIGKILL')
}

describe('crash', () => {
  it('SIGKILL while ingesting: nothing delivered is lost or changed, nothing is persisted twice, nothing is missing', async () => {
    const s = await setup('fh_crash')
    const accounts: SignedAccount[] = []
    for (let i = 0; i < 8; i++)
      accounts.push(await createSignedAccount(dids, `http://${s.up.hostname}`, { curve: i % 4 === 3 ? 'p256' : 'k256' }))
    const N = 900
    const frames = await buildEvents(accounts, 1, N, { identityEvery: 10, accountEvery: 25 })
    const env = relayEnv(s.tdb.url, dids.url, s.up, { RELAY_WORKERS: '2' })
    s.relay = await startChildRelay(env)
    await addUpstream(s.relay, s.up)
    const before = await RawConsumer.open(s.relay.ws)
    const fh = syncFirehose(s.relay.ws, dids.url)
    await waitFor(async () => (await probeMetric(s.relay, 'relay_firehose_consumers_connected')) === 2 || undefined, {
      what: 'consumers connected',
    })

    // a steady 150 events/s; the upstream keeps producing whether the relay is up or not
    const feeding = feed(s.up, frames, 150)
    // crash in the middle: the upstream about halfway, consumers well into the stream
    await before.until(() => before.events().length >= 150 && s.up.head >= N * 0.45, 'events before the crash', 30_000)
    await kill(s.relay)
    const atCrash = s.up.head
    const cursorAtCrash = await s.hostCursor()
    await before.closedP
    const delivered = before.events()
    const logAtCrash = await s.log()
    assert.ok(logAtCrash.length >= delivered.length, 'everything delivered had been persisted')
    // upstream seqs persisted above the saved cursor: the upstream sends them again on resume
    const upstreamSeqOf = new Map(frames.map((f) => [builtKey(f), f.seq]))
    const aboveCursor = logAtCrash.map((r) => upstreamSeqOf.get(r.key)!).filter((q) => q > cursorAtCrash)
    const diag = `cursor at crash ${cursorAtCrash}, upstream head ${atCrash}, persisted above the cursor: ${aboveCursor.length} events (upstream seqs ${aboveCursor[0]}..${aboveCursor.at(-1)})`
    assert.ok(cursorAtCrash < atCrash, `killed while ingesting: the relay had not caught up with the upstream (${diag})`)

    s.relay = await startChildRelay(env, { port: s.relay.port, probePort: s.relay.probePort })
    await waitFor(() => (s.up.connections.length === 2 && s.up.openConnections.length === 1) || undefined, {
      what: 'resubscribed upstream',
    })
    assert.equal(s.up.connections[1]!.cursor, String(cursorAtCrash), 'resumed from the cursor persisted before the crash')
    const lastSeen = delivered.at(-1)!.seq!
    const after = await RawConsumer.open(s.relay.ws, lastSeen)
    try {
      await feeding
      // ingest finishes: every upstream event is in the log
      const expected = frames.map(builtKey)
      const want = new Set(expected)
      let logRows: LogRow[] = []
      await waitFor(
        async () => {
          logRows = await s.log()
          return logRows.filter((r) => want.has(r.key)).length >= N || undefined
        },
        { what: 'all upstream events persisted', timeoutMs: 30_000 },
      )
      const head = logRows.at(-1)!.seq
      await after.until(() => after.lastSeq() === head, 'resumed consumer reaches the head')
      await waitFor(() => fh.events.at(-1)?.seq === head || undefined, {
        what: `Firehose reconnected and caught up (at ${fh.events.at(-1)?.seq})`,
        timeoutMs: 30_000,
      })
      await new Promise((r) => setTimeout(r, 300))

      // everything a consumer received before the crash: in the log, same seq, same bytes
      const bySeq = new Map(logRows.map((r) => [r.seq, r]))
      for (const m of delivered) {
        const row = bySeq.get(m.seq!)
        assert.ok(row, `delivered seq ${m.seq} is in the log`)
        assert.deepEqual(row.frame, m.bytes, `delivered seq ${m.seq}: same bytes in the log`)
      }
      // the log: seqs without gap or reuse, every upstream event in it, nothing else
      assert.deepEqual(
        logRows.map((r) => r.seq),
        range(1, head),
        'relay seqs 1..head',
      )
      const logKeys = logRows.map((r) => r.key)
      const inLog = new Set(logKeys)
      assert.deepEqual(
        expected.filter((k) => !inLog.has(k)),
        [],
        'no upstream event missing',
      )
      assert.deepEqual(
        logKeys.filter((k) => !want.has(k)),
        [],
        'nothing but upstream events',
      )
      const dup = duplicates(logKeys)
      assert.deepEqual(
        dup.filter((k) => k.startsWith('commit ')),
        [],
        `no commit persisted twice (${diag})`,
      )
      assert.deepEqual(dup, [], `no upstream event persisted twice (${diag})`)
      assertSameEvents(logKeys, expected, 'event log')
      // the consumer resuming from its last seq: exactly the rest
      assert.deepEqual(after.seqs(), range(lastSeen + 1, head))
      assert.deepEqual(
        [...delivered, ...after.events()].map((m) => m.bytes),
        logRows.map((r) => r.frame),
      )
      // the Firehose across the crash: every event once, in seq order
      assert.deepEqual(
        fh.errors.filter((e) => e.name !== 'FirehoseSubscriptionError').map((e) => `${e.name}: ${e.message}`),
        [],
      )
      assert.deepEqual(
        fh.events.map((e) => e.seq),
        range(1, head),
        'Firehose: every event once across the crash',
      )
    } finally {
      await after.close()
      await fh.destroy()
      await s.relay.close()
    }
  })

  it('events persisted above the saved upstream cursor (another shard was slower) are not persisted again after a crash', async () => {
    const s = await setup('fh_crash_shard')
    // S validates in shard 0, F in shard 1 (RELAY_WORKERS=2)
    let S: SignedAccount | undefined
    let F: SignedAccount | undefined
    while (!S || !F) {
      const a = await createSignedAccount(dids, `http://${s.up.hostname}`)
      if (shardOf(a.did, 2) === 0) S ??= a
      else F ??= a
    }
    const env = relayEnv(s.tdb.url, dids.url, s.up, { RELAY_WORKERS: '2', RELAY_RESOLVE_TIMEOUT: '60s' })
    s.relay = await startChildRelay(env)
    await addUpstream(s.relay, s.up)

    const sent: BuiltFrame[] = []
    const send = (f: BuiltFrame) => {
      sent.push(f)
      s.up.appendFrame(f.seq, f.did, f.frame)
    }
    // both accounts known to the relay, identities cached
    send(await commitFrame(S, 1))
    send(await commitFrame(F, 2))
    await waitFor(async () => (await s.log()).length === 2 || undefined, { what: 'warm-up persisted' })

    // S's next commit needs its DID document again (its #identity purges the cache) and PLC
    // takes 60 s to answer: shard 0 is stuck on upstream seq 4 while shard 1 goes on.
    dids.delays.set(S.did, 60_000)
    const resolvesBefore = dids.requests.get(S.did) ?? 0
    send(identityEventFrame(S, 3))
    send(await commitFrame(S, 4))
    send(identityEventFrame(F, 5))
    send(accountEventFrame(F, 6, true))
    send(await commitFrame(F, 7))
    const fKeys = sent.filter((f) => f.did === F!.did && f.seq >= 5).map(builtKey)
    await waitFor(
      async () => {
        const keys = new Set((await s.log()).map((r) => r.key))
        return fKeys.every((k) => keys.has(k)) || undefined
      },
      { what: "F's events persisted while S is stuck" },
    )
    await waitFor(() => (dids.requests.get(S!.did) ?? 0) > resolvesBefore || undefined, { what: "S's DID document requested" })
    const cursorAtCrash = await s.hostCursor()
    assert.ok(cursorAtCrash <= 3, `the saved cursor stays below S's commit (seq 4), got ${cursorAtCrash}`)
    await kill(s.relay)
    dids.delays.delete(S.did)

    s.relay = await startChildRelay(env, { port: s.relay.port, probePort: s.relay.probePort })
    try {
      await waitFor(() => (s.up.connections.length === 2 && s.up.openConnections.length === 1) || undefined, {
        what: 'resubscribed upstream',
      })
      assert.equal(s.up.connections[1]!.cursor, String(cursorAtCrash))
      // a marker after the replayed range: once it is persisted, the replay has been processed
      send(await commitFrame(F, 8))
      const expected = sent.map(builtKey)
      let rows: LogRow[] = []
      await waitFor(
        async () => {
          rows = await s.log()
          return rows.some((r) => r.key === expected.at(-1)) || undefined
        },
        { what: 'marker persisted', timeoutMs: 20_000 },
      )
      await new Promise((r) => setTimeout(r, 500))
      rows = await s.log()
      assert.deepEqual(
        rows.map((r) => r.seq),
        range(1, rows.length),
      )
      assert.deepEqual(duplicates(rows.map((r) => r.key)), [], 'no upstream event persisted twice')
      assertSameEvents(
        rows.map((r) => r.key),
        expected,
        'event log',
      )
    } finally {
      await s.relay.close()
    }
  })
})
