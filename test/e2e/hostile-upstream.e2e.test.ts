// End to end against a hostile upstream: a scripted host (test/helpers/hostile-upstream.ts) that
// the relay subscribes to like any PDS. It interleaves valid signed events of accounts it really
// hosts (their PLC documents name it) with forged signatures, rolled-back revs, events for DIDs
// it does not host, commits of an account it reported deactivated, undecodable commits, an
// oversized frame and raw garbage. Every bad event must be dropped and counted under the right
// reason, every good one must come out of the relay exactly once and in order, the relay must
// resume from its cursor after the garbage cost it the connection, and it must stay ready.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { decodeFirst } from '@atcute/cbor'
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts'
import {
  HostileUpstream,
  accountFrame,
  createPost,
  createScriptedAccount,
  forgedCommit,
  identityFrame,
  nextCommit,
  oversizedCommit,
  replayedCommit,
  undecodableCommit,
  type ScriptedAccount,
} from '../helpers/hostile-upstream.ts'
import { RawFirehose, firehoseUrl, startNetwork, type TestNetwork } from '../helpers/pds-network.ts'
import { waitFor } from '../helpers/relay-process.ts'
import {
  EVENT_TYPES,
  addHost,
  assertStrictlyIncreasing,
  duplicates,
  eventKey,
  hostSeq,
  metricValue,
  scrapeMetrics,
  startRelay,
  watchReadiness,
  withoutSeq,
  type RelayHandle,
} from './relay-harness.ts'

/** Drop reasons of relay_events_dropped_total this script must produce, and how often. */
const EXPECTED_DROPS: Record<string, number> = { signature: 1, rev_stale: 1, host_authority: 2, inactive: 1, decode: 1 }

function decodeFrame(bytes: Uint8Array): { t: string; did: string; body: Record<string, any> } {
  const [header, rest] = decodeFirst(bytes)
  const [body] = decodeFirst(rest)
  return { t: header.t, did: body.repo ?? body.did, body }
}

describe('relay against a hostile upstream', { timeout: 150_000 }, () => {
  let net: TestNetwork
  let db: TestDatabase
  let up: HostileUpstream
  let relay: RelayHandle
  let consumer: RawFirehose
  let readiness: ReturnType<typeof watchReadiness>
  let g1: ScriptedAccount, g2: ScriptedAccount, d: ScriptedAccount, x: ScriptedAccount
  /** the good frames, in the order sent */
  const good: Array<{ key: string; label: string; body: Record<string, any> }> = []
  const t0 = Date.now()

  before(async () => {
    ;[net, db] = await Promise.all([startNetwork({ pdsCount: 0 }), createTestDatabase('e2e_hostile')])
    up = new HostileUpstream()
    await up.listen()
    ;[g1, g2, d, x] = await Promise.all([
      createScriptedAccount(net.plcUrl, up.url, 'g1.test', 'k256'),
      createScriptedAccount(net.plcUrl, up.url, 'g2.test', 'p256'),
      createScriptedAccount(net.plcUrl, up.url, 'd.test', 'k256'),
      // hosted elsewhere according to its DID document
      createScriptedAccount(net.plcUrl, 'http://localhost:1', 'x.test', 'k256'),
    ])
    relay = await startRelay({ DATABASE_URL: db.url, RELAY_PLC_URL: net.plcUrl })
    readiness = watchReadiness(relay)
    await addHost(relay, up.hostname)
    await waitFor(() => up.connected >= 1 || undefined, { what: 'the relay to open the subscription' })
    consumer = new RawFirehose(firehoseUrl(relay.base))
    await consumer.open()
  })

  after(async () => {
    readiness?.stop()
    await consumer?.close().catch(() => {})
    if (relay && relay.proc.proc.exitCode === null) {
      relay.proc.proc.kill('SIGTERM')
      await relay.proc.exited
    }
    await up?.close()
    await net?.close()
    await db?.drop().catch(() => {})
    console.log(`hostile upstream e2e: ${Date.now() - t0} ms`)
  })

  async function sendGood(label: string, build: (seq: number) => Uint8Array | Promise<Uint8Array>): Promise<void> {
    const bytes = await build(up.nextSeq())
    up.emit(label, () => bytes)
    const f = decodeFrame(bytes)
    good.push({ key: eventKey(f), label, body: f.body })
  }

  async function sendBad(label: string, build: (seq: number) => Uint8Array | Promise<Uint8Array>): Promise<void> {
    const bytes = await build(up.nextSeq())
    up.emit(label, () => bytes)
  }

  /** The relay has moved its cursor past everything sent and delivered every good event. */
  async function settle(): Promise<void> {
    const last = up.log.at(-1)!.seq
    await waitFor(async () => (await hostSeq(relay, up.hostname)) >= last || undefined, {
      what: `relay cursor ≥ ${last}`,
      timeoutMs: 20_000,
    })
    const want = good.map((g) => g.key)
    try {
      await consumer.until(
        (evs) => {
          const have = new Set(evs.map((e) => eventKey(e)))
          return want.every((k) => have.has(k))
        },
        'every good event downstream',
        20_000,
      )
    } catch (err) {
      const have = new Set(consumer.events.map((e) => eventKey(e)))
      throw new Error(
        `${(err as Error).message}; missing: ${good
          .filter((g) => !have.has(g.key))
          .map((g) => g.label)
          .join(', ')}\n${relay.proc.output().slice(-5000)}`,
      )
    }
  }

  it('drops every bad event with its reason and passes every good one, in order', async () => {
    await sendGood('g1 #identity', (s) => identityFrame(g1, s))
    await sendGood('g1 #account', (s) => accountFrame(g1, s, true))
    await sendGood('g1 commit 0', async (s) => (await nextCommit(g1, [createPost('g1 first')], s)).frame)
    await sendGood('g2 #identity', (s) => identityFrame(g2, s))
    await sendGood('g2 #account', (s) => accountFrame(g2, s, true))
    await sendGood('g2 commit 0 (P-256)', async (s) => (await nextCommit(g2, [createPost('g2 first')], s)).frame)

    await sendBad('g1 forged signature', (s) => forgedCommit(g1, [createPost('not from g1')], s))
    await sendGood('g1 commit 1', async (s) => (await nextCommit(g1, [createPost('g1 second')], s)).frame)
    await sendBad('g1 rolled-back rev (commit 0 again)', (s) => replayedCommit(g1, 0, s))

    await sendBad('x commit (hosted elsewhere)', async (s) => (await nextCommit(x, [createPost('x')], s)).frame)
    await sendBad('x #account (hosted elsewhere)', (s) => accountFrame(x, s, true))

    await sendGood('d #identity', (s) => identityFrame(d, s))
    await sendGood('d #account active', (s) => accountFrame(d, s, true))
    await sendGood('d commit 0', async (s) => (await nextCommit(d, [createPost('d first')], s)).frame)
    up.repoStatus.set(d.did, { active: false, status: 'deactivated' })
    await sendGood('d #account deactivated', (s) => accountFrame(d, s, false, 'deactivated'))
    await sendBad('d commit while deactivated', async (s) => (await nextCommit(d, [createPost('d while deactivated')], s)).frame)

    await sendGood('g2 commit 1', async (s) => (await nextCommit(g2, [createPost('g2 second')], s)).frame)
    await sendBad('g1 commit with undecodable blocks', (s) => undecodableCommit(g1, s))
    await sendBad('g1 oversized frame (6 MB)', (s) => oversizedCommit(g1, 6_000_000, s))
    await sendGood('g1 commit 2', async (s) => (await nextCommit(g1, [createPost('g1 third')], s)).frame)
    await settle()
    const cursorBeforeGarbage = up.log.at(-1)!.seq

    // Raw garbage: invalid framing costs the connection; the relay must come back with its cursor.
    up.sendRaw(Uint8Array.from([0xff, 0x00, 0x13, 0x37, 0xde, 0xad, 0xbe, 0xef]))
    await waitFor(() => (up.connections.length >= 2 && up.connected >= 1) || undefined, {
      what: 'the relay to reconnect after the garbage',
      timeoutMs: 30_000,
    })
    assert.deepEqual(up.connections, [null, cursorBeforeGarbage], 'first connection at the live head, the second from the cursor')

    await sendGood('g2 commit 2 (after the reconnect)', async (s) => (await nextCommit(g2, [createPost('g2 third')], s)).frame)
    await sendGood('g1 commit 3 (after the reconnect)', async (s) => (await nextCommit(g1, [createPost('g1 fourth')], s)).frame)
    await settle()

    // downstream: exactly the good events, once each, in the order sent per account (the relay
    // orders events of one DID; different DIDs validate on different workers), bodies unchanged
    // but seq
    const out = consumer.events.filter((e) => EVENT_TYPES.has(e.t))
    assertStrictlyIncreasing(out, 'relay output')
    const keys = out.map((e) => eventKey(e))
    assert.deepEqual(duplicates(keys), [])
    const labels = new Map(good.map((g) => [g.key, g.label]))
    const goodByKey = new Map(good.map((g) => [g.key, g]))
    const didOf = (body: Record<string, any>) => String(body.repo ?? body.did)
    const perDid = (items: Array<{ did: string; label: string }>) => {
      const m = new Map<string, string[]>()
      for (const it of items) m.set(it.did, [...(m.get(it.did) ?? []), it.label])
      return Object.fromEntries([...m].sort(([a], [b]) => a.localeCompare(b)))
    }
    assert.deepEqual(
      perDid(out.map((e, i) => ({ did: e.did, label: labels.get(keys[i]!) ?? `unexpected ${keys[i]}` }))),
      perDid(good.map((g) => ({ did: didOf(g.body), label: g.label }))),
    )
    for (let i = 0; i < out.length; i++) {
      const g = goodByKey.get(keys[i]!)!
      assert.deepEqual(withoutSeq(out[i]!.body), withoutSeq(g.body), `body of ${g.label}`)
    }

    // every bad event counted under its reason, and nothing else dropped
    const m = await scrapeMetrics(relay)
    const drops: Record<string, number> = {}
    for (const [k, v] of m) {
      const r = /^relay_events_dropped_total\{.*reason="([^"]+)".*\}$/.exec(k)
      if (r && v > 0) drops[r[1]!] = v
    }
    assert.deepEqual(drops, EXPECTED_DROPS, 'relay_events_dropped_total by reason')
    assert.equal(metricValue(m, 'relay_upstream_dropped_total', { reason: 'oversize' }), 1, 'oversized frame dropped by the subscriber')
    assert.equal(metricValue(m, 'relay_upstream_reconnects_total', { cause: 'framing' }), 1, 'one reconnect for invalid framing')
    assert.ok(up.statusQueries.includes(d.did), 'the relay re-checked the deactivated account with its host')
    assert.equal(await hostSeq(relay, up.hostname), up.log.at(-1)!.seq)

    // and it stayed ready throughout
    assert.deepEqual(readiness.failures, [])
  })
})
