// End to end against software this team did not write: an in-memory PLC and two real
// @atproto/pds instances upstream, the relay as a child process, and downstream both
// @atproto/sync's Firehose (signature + lexicon validation) and a plain `ws` reader.
//
// Oracle: a raw reader on each PDS's own firehose records everything the PDS emitted. Each event
// is then classified independently of the relay (host authority from the PLC history this test
// wrote, account status from the PDS's own #account events, signatures and rev checks with
// @atproto/repo) into "the relay must pass it" or "must drop it", and the relay's output is
// compared with that: every expected event exactly once, nothing else, per-account order, seqs
// strictly increasing, bodies identical apart from seq.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { IdResolver, MemoryCache } from '@atproto/identity'
import { Firehose, MemoryRunner } from '@atproto/sync'
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts'
import * as N from '../helpers/pds-network.ts'
import { waitFor } from '../helpers/relay-process.ts'
import {
  EVENT_TYPES,
  addHost,
  adminCall,
  assertStrictlyIncreasing,
  commitProblem,
  duplicates,
  eventKey,
  hostSeq,
  scrapeMetrics,
  metricValue,
  startRelay,
  stopRelay,
  watchReadiness,
  withoutSeq,
  xrpc,
  type RelayHandle,
} from './relay-harness.ts'

const POST = 'app.bsky.feed.post'
const LIKE = 'app.bsky.feed.like'

interface Classified {
  host: N.TestPds
  ev: N.RawEvent
  key: string
  accept: boolean
  why: string
}

interface AccountModel {
  /** authoritative host over time: the host named by the PLC document from `from` (ms) on */
  authority: Array<{ host: N.TestPds; from: number; key: string }>
  active: boolean
  rev: string | null
  /** the relay took the account down at this time (ms) */
  relayTakedownAt?: number
}

describe('relay between real PDSs and real consumers', { timeout: 240_000 }, () => {
  let net: N.TestNetwork
  let A: N.TestPds
  let B: N.TestPds
  let db: TestDatabase
  let relay: RelayHandle
  let readiness: ReturnType<typeof watchReadiness> | undefined
  const oracle = new Map<N.TestPds, N.RawFirehose>()
  const model = new Map<string, AccountModel>()
  const names = new Map<string, string>()
  /** relay-originated events (admin takedown) the relay must emit in addition */
  const relayOwn: Array<{ did: string; active: boolean; status: string; after: number }> = []
  let consumer: N.RawFirehose // plain ws reader, live from before the first account
  /** what earlier connections of that reader received (it reconnects with its cursor after the restart) */
  const deliveredEarlier = new Set<string>()
  let fh: Firehose | undefined
  const fhEvents: string[] = []
  const fhErrors: Error[] = []
  let fhCursor = 0
  let alice: N.Account, bob: N.Account, carol: N.Account, dave: N.Account, erin: N.Account
  let relayEnv: Record<string, string>
  const timings: Record<string, number> = {}
  const t0 = Date.now()
  const mark = (what: string) => {
    timings[what] = Date.now() - t0
  }

  before(async () => {
    ;[net, db] = await Promise.all([N.startNetwork({ pdsCount: 2 }), createTestDatabase('e2e_pds')])
    ;[A, B] = net.pds as [N.TestPds, N.TestPds]
    mark('network up')
    relayEnv = { DATABASE_URL: db.url, RELAY_PLC_URL: net.plcUrl }
    relay = await startRelay(relayEnv)
    mark('relay up')
    readiness = watchReadiness(relay)
    for (const p of [A, B]) {
      const o = new N.RawFirehose(N.firehoseUrl(p.url))
      await o.open()
      oracle.set(p, o)
      // registered before any account exists, as `localhost:PORT` (a dev PDS's own requestCrawl
      // names `localhost` without the port)
      await addHost(relay, p.hostname)
    }
    consumer = new N.RawFirehose(N.firehoseUrl(relay.base))
    await consumer.open()

    const idResolver = new IdResolver({ plcUrl: net.plcUrl, didCache: new MemoryCache(), fetch: globalThis.fetch })
    const runner = new MemoryRunner({
      setCursor: async (c) => {
        fhCursor = c
      },
    })
    fh = new Firehose({
      service: relay.ws,
      idResolver,
      runner,
      // `.test` handles don't resolve through DNS; the relay doesn't vouch for handles anyway
      unauthenticatedHandles: true,
      handleEvent: (e) => {
        if (e.event === 'create' || e.event === 'update' || e.event === 'delete')
          fhEvents.push(`${e.seq}|${e.event}|${e.did}|${e.collection}/${e.rkey}`)
        else if (e.event === 'account') fhEvents.push(`${e.seq}|account|${e.did}|${e.active}|${e.status ?? ''}`)
        else if (e.event === 'sync') fhEvents.push(`${e.seq}|sync|${e.did}|${e.rev}`)
        else fhEvents.push(`${e.seq}|identity|${e.did}`)
      },
      onError: (err) => fhErrors.push(err),
    })
    void fh.start()
    await waitFor(
      async () => {
        const list: unknown[] = await adminCall(relay, 'GET', '/admin/consumers/list')
        return list.length >= 2 || undefined
      },
      { what: 'both consumers connected to the relay' },
    )
    mark('consumers connected')
  })

  after(async () => {
    readiness?.stop()
    await fh?.destroy().catch(() => {})
    await consumer?.close().catch(() => {})
    for (const o of oracle.values()) await o.close().catch(() => {})
    if (relay && relay.proc.proc.exitCode === null) {
      relay.proc.proc.kill('SIGTERM')
      await relay.proc.exited
    }
    await net?.close()
    await db?.drop().catch(() => {})
    console.log(`pds e2e timings (ms since start): ${JSON.stringify(timings)}`)
  })

  // ---- the oracle -------------------------------------------------------------------------

  async function track(a: N.Account, name: string): Promise<void> {
    names.set(a.did, name)
    model.set(a.did, { authority: [{ host: a.pds, from: 0, key: await N.signingKeyOf(net.plcUrl, a.did) }], active: false, rev: null })
  }

  const label = (did: string) => names.get(did) ?? did

  /** Every event either PDS emitted for our accounts, classified, in emission order. */
  async function classify(): Promise<Classified[]> {
    const all: Array<{ host: N.TestPds; ev: N.RawEvent; ms: number }> = []
    for (const [host, o] of oracle) {
      for (const ev of o.events) if (EVENT_TYPES.has(ev.t) && model.has(ev.did)) all.push({ host, ev, ms: Date.parse(ev.body.time) })
    }
    // Per account the authoritative host changes only at a migration, which this test separates in
    // time, so ordering by time (then host seq) reproduces each account's history.
    all.sort((x, y) => x.ms - y.ms || (x.host === y.host ? x.ev.seq - y.ev.seq : x.host.port - y.host.port))
    const state = new Map<string, { active: boolean; rev: string | null }>()
    const out: Classified[] = []
    for (const { host, ev, ms } of all) {
      const m = model.get(ev.did)!
      const st = state.get(ev.did) ?? { active: false, rev: null }
      state.set(ev.did, st)
      const auth = [...m.authority].reverse().find((x) => x.from <= ms)!
      const verdict = (accept: boolean, why: string) => out.push({ host, ev, key: eventKey(ev), accept, why })
      if (ev.t === '#identity') {
        verdict(true, 'any host may announce an identity change')
        continue
      }
      if (auth.host !== host) {
        verdict(false, `host_authority: ${host.hostname} is not the account's host (${auth.host.hostname})`)
        continue
      }
      if (m.relayTakedownAt !== undefined && ms >= m.relayTakedownAt) {
        verdict(false, 'inactive: taken down at the relay')
        continue
      }
      if (ev.t === '#account') {
        st.active = ev.body.active
        verdict(true, 'account status from its host')
        continue
      }
      if (!st.active) {
        verdict(false, 'inactive')
        continue
      }
      const problem = await commitProblem(ev, auth.key)
      if (problem) {
        verdict(false, problem)
        continue
      }
      const rev: string = ev.body.rev
      if (st.rev !== null && (ev.t === '#commit' ? rev <= st.rev : rev < st.rev)) {
        verdict(false, `rev_stale: ${rev} after ${st.rev}`)
        continue
      }
      st.rev = rev
      verdict(true, 'valid')
    }
    return out
  }

  /**
   * Barrier: the oracles have everything each PDS sequenced, the relay has persisted (or dropped)
   * all of it, and the consumers have received everything the relay must pass.
   */
  async function settle(opts: { firehose?: boolean } = {}): Promise<Classified[]> {
    for (const [p, o] of oracle) {
      const seq = await N.pdsSeq(p)
      await o.until((evs) => (evs.at(-1)?.seq ?? 0) >= seq, `PDS ${p.hostname} seq ${seq}`)
      await waitFor(async () => (await hostSeq(relay, p.hostname)) >= seq || undefined, {
        what: `relay cursor for ${p.hostname} ≥ ${seq}`,
        timeoutMs: 20_000,
      })
    }
    const cls = await classify()
    const want = new Set(cls.filter((c) => c.accept).map((c) => c.key))
    for (const r of relayOwn) want.add(`relay-account|${r.did}|${r.status}`)
    const have = () => {
      const h = new Set(deliveredEarlier)
      for (const e of consumer.events) if (EVENT_TYPES.has(e.t)) h.add(ownKey(e) ?? eventKey(e))
      return h
    }
    try {
      await consumer.until(
        () => {
          const h = have()
          return [...want].every((k) => h.has(k))
        },
        'the relay to deliver every expected event',
        20_000,
      )
    } catch (err) {
      const h = have()
      const missing = cls.filter((c) => c.accept && !h.has(c.key)).map((c) => `${c.host.hostname}#${c.ev.seq} ${c.ev.t} ${label(c.ev.did)}`)
      throw new Error(
        `${(err as Error).message}; missing: ${missing.join(', ')}\n--- relay output (tail) ---\n${relay.proc.output().slice(-6000)}`,
      )
    }
    if (opts.firehose !== false && fh) {
      const last = consumer.lastSeq() ?? 0
      await waitFor(() => fhCursor >= last || undefined, { what: `@atproto/sync Firehose to reach seq ${last}`, timeoutMs: 20_000 })
    }
    return cls
  }

  /** Relay-originated #account events (takedowns) are keyed by DID and status. */
  function ownKey(e: N.RawEvent): string | undefined {
    if (e.t !== '#account') return undefined
    const r = relayOwn.find((x) => x.did === e.did && x.status === e.body.status && Date.parse(e.body.time) >= x.after)
    return r ? `relay-account|${r.did}|${r.status}` : undefined
  }

  /** Asserts that `got` (relay output) is exactly the accepted events of `cls` plus relay-own ones. */
  function assertDelivered(got: N.RawEvent[], cls: Classified[], what: string, only?: (c: Classified) => boolean): void {
    const evs = got.filter((e) => EVENT_TYPES.has(e.t))
    assertStrictlyIncreasing(evs, what)
    const expected = cls.filter((c) => c.accept && (only ? only(c) : true))
    const byKey = new Map(expected.map((c) => [c.key, c]))
    const keys = evs.map((e) => ownKey(e) ?? eventKey(e))
    assert.deepEqual(duplicates(keys), [], `${what}: events delivered more than once`)
    const unexpected = evs.filter((e, i) => !byKey.has(keys[i]!) && !keys[i]!.startsWith('relay-account|'))
    const dropped = new Map(cls.filter((c) => !c.accept).map((c) => [c.key, c]))
    assert.deepEqual(
      unexpected.map((e) => `${e.t} ${label(e.did)} ${dropped.get(eventKey(e))?.why ?? 'not emitted by any PDS'}`),
      [],
      `${what}: events the relay must not have passed`,
    )
    const gotKeys = new Set(keys)
    const missing = expected.filter((c) => !gotKeys.has(c.key))
    assert.deepEqual(
      missing.map((c) => `${c.host.hostname}#${c.ev.seq} ${c.ev.t} ${label(c.ev.did)}`),
      [],
      `${what}: accepted events missing`,
    )
    // per-account order = the order the account's host(s) emitted them
    const order = new Map(expected.map((c, i) => [c.key, i]))
    const perDid = new Map<string, number>()
    for (let i = 0; i < evs.length; i++) {
      const pos = order.get(keys[i]!)
      if (pos === undefined) continue
      const prev = perDid.get(evs[i]!.did) ?? -1
      assert.ok(pos > prev, `${what}: ${label(evs[i]!.did)}'s ${evs[i]!.t} (relay seq ${evs[i]!.seq}) out of order`)
      perDid.set(evs[i]!.did, pos)
    }
    // the relay re-frames with its own seq but passes everything else through unchanged
    for (let i = 0; i < evs.length; i++) {
      const c = byKey.get(keys[i]!)
      if (!c) continue
      assert.deepEqual(
        withoutSeq(evs[i]!.body),
        withoutSeq(c.ev.body),
        `${what}: body of ${c.ev.t} ${label(c.ev.did)} (upstream seq ${c.ev.seq}) changed`,
      )
    }
  }

  // ---- the scenario -----------------------------------------------------------------------

  it('passes account creation, record writes, deactivation, PDS takedown and deletion', async () => {
    alice = await N.createAccount(A, 'alice.test')
    await track(alice, 'alice')
    bob = await N.createAccount(A, 'bob.test')
    await track(bob, 'bob')
    dave = await N.createAccount(A, 'dave.test')
    await track(dave, 'dave')
    carol = await N.createAccount(B, 'carol.test')
    await track(carol, 'carol')
    erin = await N.createAccount(B, 'erin.test')
    await track(erin, 'erin')

    const p1 = await N.createRecord(alice, POST, N.post('first'))
    const rkey1 = p1.uri.split('/').pop()!
    await N.putRecord(alice, POST, rkey1, N.post('first, edited'))
    const p2 = await N.createRecord(alice, POST, N.post('second'))
    await N.deleteRecord(alice, POST, p2.uri.split('/').pop()!)
    await N.applyWrites(alice, [
      { $type: 'com.atproto.repo.applyWrites#create', collection: POST, value: N.post('multi 1') },
      {
        $type: 'com.atproto.repo.applyWrites#create',
        collection: LIKE,
        value: { $type: LIKE, subject: { uri: p1.uri, cid: p1.cid }, createdAt: new Date().toISOString() },
      },
      { $type: 'com.atproto.repo.applyWrites#update', collection: POST, rkey: rkey1, value: N.post('first, edited twice') },
    ])
    await N.createRecord(bob, POST, N.post('bob on A'))
    await N.createRecord(dave, POST, N.post('dave 1'))
    await N.createRecord(carol, POST, N.post('carol 1'))
    await N.createRecord(erin, LIKE, { $type: LIKE, subject: { uri: p1.uri, cid: p1.cid }, createdAt: new Date().toISOString() })
    await settle()

    await N.deactivateAccount(alice)
    await settle()
    await N.activateAccount(alice)
    await N.createRecord(alice, POST, N.post('back'))
    await N.adminTakedown(A, alice.did, true)
    await settle()
    await N.adminTakedown(A, alice.did, false)
    await N.createRecord(alice, POST, N.post('restored'))
    const cls = await settle()
    mark('lifecycle done')
    assertDelivered(consumer.events, cls, 'live consumer')
  })

  it('follows an account migrating from PDS A to PDS B and rejects the old host afterwards', async () => {
    const m = model.get(bob.did)!
    const started = Date.now()
    bob = await N.migrateAccount(bob, B, net.plcUrl, {
      afterPlcUpdate: async () => {
        m.authority.push({ host: B, from: started, key: await N.signingKeyOf(net.plcUrl, bob.did) })
      },
      // the relay must have seen the new host's #account before the old host deactivates
      beforeDeactivateOld: async () => {
        await settle({ firehose: false })
      },
    })
    await N.createRecord(bob, POST, N.post('bob on B'))
    await N.applyWrites(bob, [
      { $type: 'com.atproto.repo.applyWrites#create', collection: POST, value: N.post('bob multi 1') },
      { $type: 'com.atproto.repo.applyWrites#create', collection: POST, value: N.post('bob multi 2') },
    ])
    await N.adminDeleteAccount(A, alice.did)
    const cls = await settle()
    mark('migration done')

    const bobVerdicts = cls
      .filter((c) => c.ev.did === bob.did)
      .map((c) => `${c.host === A ? 'A' : 'B'} ${c.ev.t} ${c.accept ? 'pass' : `drop (${c.why})`}`)
    console.log(`bob's events as classified:\n  ${bobVerdicts.join('\n  ')}`)
    // what the migration must look like: the old host's #account after the move is rejected
    const oldHostAfter = cls.filter(
      (c) => c.ev.did === bob.did && c.host === A && Date.parse(c.ev.body.time) >= started && c.ev.t === '#account',
    )
    assert.equal(oldHostAfter.length, 1, 'PDS A announced the deactivation of the migrated account')
    assert.equal(oldHostAfter[0]!.accept, false)
    assert.ok(
      cls.some((c) => c.ev.did === bob.did && c.host === B && c.ev.t === '#commit' && c.accept),
      'a commit from the new host is accepted',
    )
    assertDelivered(consumer.events, cls, 'live consumer')

    const m2 = await scrapeMetrics(relay)
    const hostDrops = metricValue(m2, 'relay_events_dropped_total', { reason: 'host_authority' })
    assert.ok(hostDrops >= 1, `relay_events_dropped_total{reason="host_authority"} = ${hostDrops}`)
  })

  it('the @atproto/sync Firehose verified and parsed every event without validation errors', async () => {
    assert.deepEqual(
      fhErrors.map((e) => `${e.name}: ${e.message}`),
      [],
    )
    const expected: string[] = []
    for (const e of consumer.events) {
      const b = e.body
      if (e.t === '#identity') expected.push(`${e.seq}|identity|${e.did}`)
      else if (e.t === '#account') expected.push(`${e.seq}|account|${e.did}|${b.active}|${b.status ?? ''}`)
      else if (e.t === '#sync') expected.push(`${e.seq}|sync|${e.did}|${b.rev}`)
      else if (e.t === '#commit') for (const op of b.ops) expected.push(`${e.seq}|${op.action}|${e.did}|${op.path}`)
    }
    assert.deepEqual([...fhEvents].sort(), expected.sort())
    await fh!.destroy()
    fh = undefined
  })

  it('serves getLatestCommit, getRepoStatus, listRepos and listReposByCollection in agreement with the PDSs', async () => {
    await compareQueries()
  })

  it('relay takedown: #account takendown, later commits dropped, events removed from replay', async () => {
    const before = Date.now()
    relayOwn.push({ did: carol.did, active: false, status: 'takendown', after: before - 1000 })
    await adminCall(relay, 'POST', '/admin/repo/takeDown', { did: carol.did })
    model.get(carol.did)!.relayTakedownAt = Date.now()
    await N.createRecord(carol, POST, N.post('carol after the takedown'))
    const cls = await settle()
    const own = consumer.events.filter((e) => e.did === carol.did && e.t === '#account' && e.body.status === 'takendown')
    assert.equal(own.length, 1)
    assert.equal(own[0]!.body.active, false)
    assertDelivered(consumer.events, cls, 'live consumer')
    const status = await xrpc(relay, 'com.atproto.sync.getRepoStatus', { did: carol.did })
    assert.equal(status.status, 200)
    assert.equal(status.body.active, false)
    assert.equal(status.body.status, 'takendown')
    const latest = await xrpc(relay, 'com.atproto.sync.getLatestCommit', { did: carol.did })
    assert.equal(latest.body.error, 'RepoTakendown')
  })

  it('restart: clean exit, resumes upstream cursors, seq continues, cursors and full replay are exact', async () => {
    const lastBefore = consumer.lastSeq()!
    const deliveredBefore = new Set(consumer.events.filter((e) => EVENT_TYPES.has(e.t)).map((e) => ownKey(e) ?? eventKey(e)))
    for (const k of deliveredBefore) deliveredEarlier.add(k)
    await consumer.close()
    readiness?.stop()
    await stopRelay(relay)
    mark('relay stopped')
    // written while the relay is down: fetched from the hosts' cursors after the restart
    await N.createRecord(dave, POST, N.post('dave while the relay is down'))
    await N.createRecord(erin, POST, N.post('erin while the relay is down'))
    await N.createRecord(carol, POST, N.post('carol while the relay is down'))
    relay = await startRelay(relayEnv, { port: relay.port, probePort: relay.probePort })
    mark('relay restarted')
    readiness = watchReadiness(relay)
    await N.createRecord(dave, POST, N.post('dave after the restart'))
    await N.applyWrites(erin, [{ $type: 'com.atproto.repo.applyWrites#create', collection: POST, value: N.post('erin after the restart') }])

    // a consumer that resumes from the last seq it processed
    const resumed = new N.RawFirehose(N.firehoseUrl(relay.base, lastBefore))
    await resumed.open()
    consumer = resumed
    const cls = await settle({ firehose: false })
    const later = resumed.events.filter((e) => EVENT_TYPES.has(e.t))
    assert.ok(later.length > 0)
    assert.ok(later[0]!.seq > lastBefore, `first seq after the restart ${later[0]!.seq} ≤ ${lastBefore}`)
    // exactly what the relay accepted after the cursor: nothing delivered before it again
    assertDelivered(
      later,
      cls.filter((c) => !deliveredBefore.has(c.key)),
      'consumer resumed from its cursor',
    )

    const full = new N.RawFirehose(N.firehoseUrl(relay.base, 0))
    await full.open()
    try {
      await full.until((evs) => evs.some((e) => e.seq >= resumed.lastSeq()!), 'replay from cursor 0 to reach the head')

      // cursor=0 replays everything, minus the events of the account the relay took down
      // (its takedown #account stays)
      const replay = full.events.filter((e) => EVENT_TYPES.has(e.t))
      const infos = full.events.filter((e) => !EVENT_TYPES.has(e.t))
      assert.ok(
        infos.every((e) => e.t === '#info'),
        `unexpected frames: ${infos.map((e) => e.t).join(',')}`,
      )
      assertDelivered(replay, cls, 'replay from cursor 0', (c) => c.ev.did !== carol.did)
      assert.deepEqual(
        replay.filter((e) => e.did === carol.did).map((e) => `${e.t} ${e.body.status ?? ''}`),
        ['#account takendown'],
        'only the takedown announcement of the taken-down account is replayed',
      )
    } finally {
      await full.close()
    }
    mark('restart checks done')
    await compareQueries()
    assert.deepEqual(readiness!.failures, [], '/_readyz answered something other than 200')
  })

  async function compareQueries(): Promise<void> {
    const cls = await classify()
    const active = [alice, bob, carol, dave, erin].filter((a) => a.did !== alice.did)
    const relayTakenDown = new Set([...model].filter(([, m]) => m.relayTakedownAt !== undefined).map(([d]) => d))
    for (const a of active) {
      const pds = N.clientFor(a.pds)
      const pStatus = await pds.call('com.atproto.sync.getRepoStatus', { query: { did: a.did } })
      const rStatus = await xrpc(relay, 'com.atproto.sync.getRepoStatus', { did: a.did })
      assert.equal(rStatus.status, 200, `relay getRepoStatus ${label(a.did)}: ${JSON.stringify(rStatus.body)}`)
      if (relayTakenDown.has(a.did)) {
        assert.deepEqual({ active: rStatus.body.active, status: rStatus.body.status }, { active: false, status: 'takendown' })
        continue
      }
      assert.deepEqual(rStatus.body, pStatus, `getRepoStatus ${label(a.did)}`)
      const pLatest = await pds.call('com.atproto.sync.getLatestCommit', { query: { did: a.did } })
      const rLatest = await xrpc(relay, 'com.atproto.sync.getLatestCommit', { did: a.did })
      assert.deepEqual(rLatest.body, pLatest, `getLatestCommit ${label(a.did)}`)
    }
    // the deleted account
    const aliceStatus = await xrpc(relay, 'com.atproto.sync.getRepoStatus', { did: alice.did })
    assert.equal(aliceStatus.status, 200)
    assert.deepEqual({ active: aliceStatus.body.active, status: aliceStatus.body.status }, { active: false, status: 'deleted' })
    const aliceLatest = await xrpc(relay, 'com.atproto.sync.getLatestCommit', { did: alice.did })
    assert.equal(aliceLatest.body.error, 'RepoDeleted')

    // listRepos: every account hosted on a PDS, with the same head/rev/active (the relay's own
    // takedown overriding), plus the deleted one as inactive
    const relayRepos = new Map<string, any>()
    let cursor: string | undefined
    do {
      const page = await xrpc(relay, 'com.atproto.sync.listRepos', { limit: '2', ...(cursor ? { cursor } : {}) })
      assert.equal(page.status, 200)
      for (const r of page.body.repos) {
        assert.ok(!relayRepos.has(r.did), 'listRepos pages overlap')
        relayRepos.set(r.did, r)
      }
      cursor = page.body.cursor
    } while (cursor)
    for (const a of active) {
      const pRepos = await N.clientFor(a.pds).call('com.atproto.sync.listRepos', { query: { limit: '100' } })
      const p = pRepos.repos.find((r: any) => r.did === a.did)
      const r = relayRepos.get(a.did)
      assert.ok(p && r, `${label(a.did)} listed by its PDS and the relay`)
      if (relayTakenDown.has(a.did)) {
        // the relay keeps the state it last accepted; the PDS moved on without it
        const lastAccepted = cls.filter((c) => c.accept && c.ev.did === a.did && c.ev.t === '#commit').at(-1)!
        assert.deepEqual(
          { head: r.head, rev: r.rev, active: r.active, status: r.status },
          { head: lastAccepted.ev.body.commit.$link, rev: lastAccepted.ev.body.rev, active: false, status: 'takendown' },
        )
      } else {
        assert.deepEqual(
          { head: r.head, rev: r.rev, active: r.active },
          { head: p.head, rev: p.rev, active: p.active },
          `listRepos ${label(a.did)}`,
        )
      }
    }
    assert.deepEqual(
      { active: relayRepos.get(alice.did)?.active, status: relayRepos.get(alice.did)?.status },
      { active: false, status: 'deleted' },
    )
    assert.equal(relayRepos.size, 5)

    // listReposByCollection: accounts the relay serves whose repo (per its PDS) holds the collection
    for (const collection of [POST, LIKE]) {
      const want: string[] = []
      for (const a of active) {
        if (relayTakenDown.has(a.did)) continue
        const d = await N.clientFor(a.pds).call('com.atproto.repo.describeRepo', { query: { repo: a.did } })
        if (d.collections.includes(collection)) want.push(a.did)
      }
      const got = await xrpc(relay, 'com.atproto.sync.listReposByCollection', { collection })
      assert.equal(got.status, 200)
      assert.deepEqual(got.body.repos.map((r: any) => r.did).sort(), want.sort(), `listReposByCollection ${collection}`)
    }
  }
})
