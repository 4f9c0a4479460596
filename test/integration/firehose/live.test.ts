// Live delivery through the whole relay: a scripted upstream sends real signed events (commits
// from K-256 and P-256 repos, #identity, #account); @atproto/sync's Firehose (lexicon validation,
// signature and inclusion-proof verification against the test PLC) and a raw `ws` consumer
// connected at the live head receive every one, in upstream per-DID order, with strictly
// increasing relay seqs, byte-identical to the event log.

import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { createTestDatabase, type TestDatabase } from '../../helpers/db.ts'
import { FakeUpstream } from '../../helpers/fake-upstream.ts'
import { waitFor } from '../../helpers/relay-process.ts'
import {
  accountEventFrame,
  buildEvents,
  createSignedAccount,
  DidServer,
  type BuiltFrame,
  type SignedAccount,
} from '../../helpers/signed-repo.ts'
import {
  addUpstream,
  builtKey,
  feed,
  range,
  RawConsumer,
  readLog,
  relayEnv,
  startInProcessRelay,
  syncFirehose,
  upstreamKey,
  type InProcessRelay,
} from './helpers.ts'
import { closeConsumers } from './helpers.ts'

let tdb: TestDatabase
let dids: DidServer
let up: FakeUpstream
let relay: InProcessRelay
let accounts: SignedAccount[]

before(async () => {
  tdb = await createTestDatabase('fh_live')
  dids = await DidServer.start()
  up = await FakeUpstream.start()
  const pds = `http://${up.hostname}`
  accounts = []
  for (let i = 0; i < 6; i++) accounts.push(await createSignedAccount(dids, pds, { curve: i % 3 === 2 ? 'p256' : 'k256' }))
  relay = await startInProcessRelay(relayEnv(tdb.url, dids.url, up))
  await addUpstream(relay, up)
})

after(async () => {
  await closeConsumers()
  await relay?.close()
  await up?.close()
  await dids?.close()
  await tdb?.drop()
})

test('live: @atproto/sync Firehose and a raw consumer get every event, verified, in order, with strictly increasing seqs', async () => {
  const fh = syncFirehose(relay.ws, dids.url)
  const raw = await RawConsumer.open(relay.ws)
  try {
    await waitFor(async () => (await relay.metric('relay_firehose_consumers_connected')) === 2 || undefined, {
      what: 'both consumers connected',
    })

    // 240 events: commits round-robin over the accounts with an #identity every 8th, then one
    // #account per account (deactivation is not exercised here: it would drop later commits).
    const frames: BuiltFrame[] = await buildEvents(accounts, 1, 240, { identityEvery: 8 })
    for (const a of accounts) frames.push(accountEventFrame(a, frames.length + 1, true))
    const commits = frames.filter((f) => f.kind === 'commit').length
    // half at once, half at a steady rate: bursts and trickles both
    await feed(up, frames.slice(0, 120))
    await feed(up, frames.slice(120), 400)

    await raw.until(() => raw.events().length >= frames.length, 'raw consumer: every event')
    await waitFor(() => fh.events.length >= frames.length || fh.errors.length > 0 || undefined, {
      what: `Firehose: every event (have ${fh.events.length})`,
      timeoutMs: 30_000,
    })
    await new Promise((r) => setTimeout(r, 200)) // nothing extra trails in

    assert.deepEqual(
      fh.errors.map((e) => `${e.name}: ${e.message}`),
      [],
      'Firehose reported no errors',
    )
    const expected = frames.map(builtKey)

    // raw consumer: exactly the upstream events, relay seqs 1..N without gap, per-DID order kept
    const got = raw.events()
    assert.equal(got.length, frames.length)
    assert.deepEqual(raw.seqs(), range(1, frames.length), 'relay seqs strictly increasing, no gap, no duplicate')
    const gotKeys = got.map((m) => upstreamKey(m.t, m.body))
    assert.deepEqual([...gotKeys].sort(), [...expected].sort(), 'every upstream event, once')
    for (const a of accounts) {
      const order = expected.filter((k) => k.includes(` ${a.did} `))
      assert.deepEqual(
        gotKeys.filter((k) => k.includes(` ${a.did} `)),
        order,
        `upstream order of ${a.did}`,
      )
    }
    // bytes on the wire = bytes in the event log
    const log = await readLog((sql) => relay.query(sql))
    assert.equal(log.length, frames.length)
    for (let i = 0; i < got.length; i++) assert.deepEqual(got[i]!.bytes, log[i]!.frame, `frame ${got[i]!.seq} identical to the log`)

    // Firehose: one create per commit (ops whose proof does not verify would be silently
    // dropped), every #identity and #account, seqs strictly increasing
    const byType = (t: string) => fh.events.filter((e) => e.event === t).length
    assert.equal(byType('create'), commits, 'every commit verified (signature + inclusion proof)')
    assert.equal(byType('identity'), frames.filter((f) => f.kind === 'identity').length)
    assert.equal(byType('account'), accounts.length)
    for (let i = 1; i < fh.events.length; i++)
      assert.ok(fh.events[i]!.seq > fh.events[i - 1]!.seq, `Firehose seq ${fh.events[i]!.seq} after ${fh.events[i - 1]!.seq}`)
    const fhCommits = fh.events.filter((e) => e.event === 'create').map((e) => `commit ${e.did} ${e.rev}`)
    assert.deepEqual(fhCommits.sort(), expected.filter((k) => k.startsWith('commit ')).sort())

    assert.equal(await relay.metric('relay_events_dropped_total'), 0, 'no upstream event dropped')
    assert.equal(await relay.metric('relay_events_accepted_total'), frames.length)
    for (const stage of ['validated', 'broadcast'])
      assert.equal(
        await relay.metric('relay_ingest_latency_seconds', { stage, le: '+Inf' }),
        frames.length,
        `every accepted event timed up to ${stage}`,
      )
  } finally {
    await fh.destroy()
    await raw.close()
  }
})
