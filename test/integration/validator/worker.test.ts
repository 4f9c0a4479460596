// The validation worker against real Postgres, a loopback PLC and a loopback PDS: host authority,
// account lifecycle and status, identity refresh, strict chain mode — run in-process through the
// worker's default export, plus per-DID order through the real ShardedPool with 2 shards.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { Registry } from 'prom-client'
import { createPool, type Pool } from '../../../src/core/db.ts'
import { createLogger } from '../../../src/core/log.ts'
import { migrate } from '../../../src/core/migrate.ts'
import { ShardedPool } from '../../../src/pool/sharded-pool.ts'
import type { FrameMeta, FrameResult } from '../../../src/pool/types.ts'
import { decodeEvent } from '../../../src/validator/validate.ts'
import { ValidatorStatsCollector } from '../../../src/validator/stats.ts'
import type { ValidatorStatsSnapshot, ValidatorWorkerConfig } from '../../../src/validator/worker-config.ts'
import validate, { closeValidatorWorker, initValidatorWorker } from '../../../workers/validate.worker.ts'
import { createTestDatabase, type TestDatabase } from '../../helpers/db.ts'
import { buildCommit, create, createRepo, del, makeKeypair, update } from '../../unit/validator/helpers.ts'
import { FakePds, FakePlc, accountFrame, buildSync, didDoc, identityFrame, meta, packTask, randomPlcDid } from './helpers.ts'

const log = createLogger('silent')
let tdb: TestDatabase
let db: Pool
let plc: FakePlc
let pds: FakePds
const hosts: Record<string, { id: number; hostname: string }> = {}

function config(extra: Partial<ValidatorWorkerConfig> = {}): ValidatorWorkerConfig {
  return {
    database: tdb.url,
    dbPoolSize: 2,
    plcUrl: plc.url,
    allowInsecureHosts: true,
    strictChain: false,
    identityCacheSize: 1000,
    identityCacheTtlMs: 3_600_000,
    identityNegativeTtlMs: 60_000,
    identityRefreshIntervalMs: 0,
    resolveTimeoutMs: 2000,
    resolveConcurrency: 4,
    accountCacheSize: 1000,
    repoStatusRecheckMs: 300,
    repoStatusMaxIntervalMs: 1000,
    didConcurrency: 8,
    logLevel: 'silent',
    statsIntervalMs: 0,
    ...extra,
  }
}

async function addHost(name: string, hostname: string, limit = 100, noSsl = false): Promise<void> {
  const { rows } = await db.query<{ id: number }>('INSERT INTO host (hostname, account_limit, no_ssl) VALUES ($1, $2, $3) RETURNING id', [
    hostname,
    limit,
    noSsl,
  ])
  hosts[name] = { id: rows[0]!.id, hostname }
}

const m = (name: string, seq = 1): FrameMeta => meta(hosts[name]!.id, hosts[name]!.hostname, seq)

async function run(frames: Uint8Array[], metas: FrameMeta[]): Promise<FrameResult[]> {
  return (await validate(packTask(frames, metas))) as FrameResult[]
}
async function one(frame: Uint8Array, mt: FrameMeta): Promise<FrameResult> {
  return (await run([frame], [mt]))[0]!
}

function assertAccepted(r: FrameResult, msg?: string): asserts r is Extract<FrameResult, { kind: 'accept' }> {
  assert.equal(r.kind, 'accept', `${msg ?? ''} ${JSON.stringify(r.kind === 'drop' ? r : r.kind)}`)
}
function assertDropped(r: FrameResult, reason: string): void {
  assert.equal(r.kind, 'drop', JSON.stringify(r.kind === 'accept' ? { kind: 'accept', ev: r.event.kind } : r))
  assert.equal((r as { reason: string }).reason, reason, JSON.stringify(r))
}

async function account(did: string) {
  const { rows } = await db.query('SELECT a.*, h.hostname FROM account a JOIN host h ON h.id = a.host_id WHERE did = $1', [did])
  return rows[0] as { host_id: number; status: string; upstream_status: string; desynchronized: boolean; hostname: string } | undefined
}
async function hostCount(name: string): Promise<number> {
  const { rows } = await db.query<{ account_count: number }>('SELECT account_count FROM host WHERE id = $1', [hosts[name]!.id])
  return rows[0]!.account_count
}

/** A fresh DID with a repo signed by a new key, registered in the PLC on `pdsUrl`. */
async function newRepo(pdsUrl: string, opts: { legacy?: boolean; handle?: string } = {}) {
  const kp = await makeKeypair('k256')
  const did = randomPlcDid()
  plc.docs.set(did, didDoc(did, kp.did(), { pds: pdsUrl, legacy: opts.legacy, handle: opts.handle }))
  const repo = await createRepo(kp, did, 3)
  return { kp, did, repo }
}

before(async () => {
  tdb = await createTestDatabase('val')
  db = createPool(tdb.url, { max: 3, log })
  await migrate(db, log)
  plc = await new FakePlc().start()
  pds = await new FakePds().start()
  await addHost('a', 'pds-a.example.com')
  await addHost('b', 'pds-b.example.com')
  await addHost('local', pds.hostname, 100, true)
  await addHost('full', 'pds-full.example.com', 1)
  await db.query('UPDATE host SET account_count = 1 WHERE id = $1', [hosts.full!.id])
  initValidatorWorker({ shard: 0, shards: 1, data: config() })
})

after(async () => {
  await closeValidatorWorker()
  await db.end()
  await plc.close()
  await pds.close()
  await tdb.drop()
})

describe('in-process worker', () => {
  test('new account from its own host: created, counted, commits chain; collection deltas', async () => {
    const { kp, did, repo } = await newRepo('https://PDS-A.example.com/')
    const c1 = await buildCommit(repo, kp, [create(), create()], { seq: 1 })
    const rkey = '3kaaaaaaaaa22'
    const c2 = await buildCommit(c1.repo, kp, [create(rkey)], { seq: 2 })
    const c3 = await buildCommit(c2.repo, kp, [update(rkey), del(rkey)].slice(0, 1), { seq: 3 })
    const before = await hostCount('a')
    const rs = await run([c1.frame, c2.frame, c3.frame], [m('a', 1), m('a', 2), m('a', 3)])
    rs.forEach((r) => assertAccepted(r))
    const r1 = rs[0] as Extract<FrameResult, { kind: 'accept' }>
    assert.equal(r1.event.kind, 'commit')
    assert.equal(r1.event.hostId, hosts.a!.id)
    assert.equal(r1.event.repoState?.rev, c1.body.rev)
    assert.deepEqual(r1.event.collectionDeltas, [{ collection: 'app.bsky.feed.post', delta: 2 }])
    assert.deepEqual((rs[2] as Extract<FrameResult, { kind: 'accept' }>).event.collectionDeltas, [
      { collection: 'app.bsky.feed.post', delta: 0 },
    ])
    assert.ok(rs.every((r) => !(r as { chainBreak?: boolean }).chainBreak))
    const row = await account(did)
    assert.equal(row?.hostname, 'pds-a.example.com')
    assert.equal(row?.status, 'active')
    assert.equal(await hostCount('a'), before + 1)
    // A retransmission is stale (the worker's cached state advanced optimistically).
    assertDropped(await one(c2.frame, m('a', 4)), 'rev_stale')
  })

  test('host authority: a new DID from a host its document does not name is rejected', async () => {
    const { kp, did, repo } = await newRepo('https://pds-a.example.com')
    const c1 = await buildCommit(repo, kp, [create()])
    assertDropped(await one(c1.frame, m('b')), 'host_authority')
    assert.equal(await account(did), undefined)
    // #account from the wrong host creates nothing either
    assertDropped(await one(accountFrame(did, true), m('b')), 'host_authority')
    assert.equal(await account(did), undefined)
  })

  test('migration: the document now names the new host → account moves and counts follow; otherwise rejected', async () => {
    const { kp, did, repo } = await newRepo('https://pds-a.example.com')
    const c1 = await buildCommit(repo, kp, [create()], { seq: 1 })
    assertAccepted(await one(c1.frame, m('a')))
    const c2 = await buildCommit(c1.repo, kp, [create()], { seq: 2 })
    // Not migrated yet: B is not authoritative.
    assertDropped(await one(c2.frame, m('b')), 'host_authority')
    const [a0, b0] = [await hostCount('a'), await hostCount('b')]
    plc.docs.set(did, didDoc(did, kp.did(), { pds: 'https://pds-b.example.com' }))
    const hits = plc.hitCount(did)
    assertAccepted(await one(c2.frame, m('b')))
    assert.equal(plc.hitCount(did), hits + 1, 'one re-resolution')
    assert.equal((await account(did))?.hostname, 'pds-b.example.com')
    assert.equal(await hostCount('a'), a0 - 1)
    assert.equal(await hostCount('b'), b0 + 1)
    // The old host is no longer authoritative.
    const c3 = await buildCommit(c2.repo, kp, [create()], { seq: 3 })
    assertDropped(await one(c3.frame, m('a')), 'host_authority')
  })

  test('#identity: passes without an account row, from any host, handle kept; purges the identity cache', async () => {
    const did = randomPlcDid()
    const r = await one(identityFrame(did, 'alice.example.com'), m('b'))
    assertAccepted(r)
    assert.equal(r.event.kind, 'identity')
    const d = decodeEvent(r.event.frame)
    assert.ok(d.kind === 'event' && d.event.type === '#identity')
    assert.equal(d.event.handle, 'alice.example.com')
    assert.equal(d.event.did, did)
    assert.equal(await account(did), undefined)

    // Purge: the next commit re-fetches the (rotated) document instead of using the cached one.
    const { kp, did: did2, repo } = await newRepo('https://pds-a.example.com')
    const c1 = await buildCommit(repo, kp, [create()], { seq: 1 })
    assertAccepted(await one(c1.frame, m('a')))
    const hits = plc.hitCount(did2)
    assertAccepted(await one(identityFrame(did2), m('a')))
    const c2 = await buildCommit(c1.repo, kp, [create()], { seq: 2 })
    assertAccepted(await one(c2.frame, m('a')))
    assert.equal(plc.hitCount(did2), hits + 1)
  })

  test('#account: upstream status recorded and re-emitted combined with the local status', async () => {
    const { kp, did, repo } = await newRepo('https://pds-a.example.com')
    const c1 = await buildCommit(repo, kp, [create()], { seq: 1 })
    assertAccepted(await one(c1.frame, m('a')))
    const before = await hostCount('a')

    let r = await one(accountFrame(did, false, 'deactivated'), m('a'))
    assertAccepted(r)
    let d = decodeEvent(r.event.frame)
    assert.ok(d.kind === 'event' && d.event.type === '#account')
    assert.equal(d.event.active, false)
    assert.equal(d.event.status, 'deactivated')
    assert.equal((await account(did))?.upstream_status, 'deactivated')

    // deleted: counted off the host once; back to active: counted again
    assertAccepted(await one(accountFrame(did, false, 'deleted'), m('a')))
    assertAccepted(await one(accountFrame(did, false, 'deleted'), m('a')))
    assert.equal(await hostCount('a'), before - 1)
    r = await one(accountFrame(did, true), m('a'))
    assertAccepted(r)
    d = decodeEvent(r.event.frame)
    assert.ok(d.kind === 'event' && d.event.type === '#account')
    assert.equal(d.event.active, true)
    assert.equal(d.event.status, null, 'active → no status field')
    assert.equal(await hostCount('a'), before)

    // A local takedown masks the upstream active, after an invalidateAccount control.
    await db.query("UPDATE account SET status = 'takendown' WHERE did = $1", [did])
    await validate({ control: { type: 'invalidateAccount', did } })
    r = await one(accountFrame(did, true), m('a'))
    assertAccepted(r)
    d = decodeEvent(r.event.frame)
    assert.ok(d.kind === 'event' && d.event.type === '#account')
    assert.equal(d.event.active, false)
    assert.equal(d.event.status, 'takendown')
    const c2 = await buildCommit(c1.repo, kp, [create()], { seq: 2 })
    assertDropped(await one(c2.frame, m('a')), 'inactive')
  })

  test('inactive upstream: getRepoStatus re-check with a cached answer, recovery when the host says active', async () => {
    const { kp, did, repo } = await newRepo(`http://${pds.hostname}`)
    const c1 = await buildCommit(repo, kp, [create()], { seq: 1 })
    assertAccepted(await one(c1.frame, m('local')))
    assertAccepted(await one(accountFrame(did, false, 'deactivated'), m('local')))
    pds.statuses.set(did, { active: false, status: 'deactivated' })
    const calls0 = pds.calls
    const c2 = await buildCommit(c1.repo, kp, [create()], { seq: 2 })
    assertDropped(await one(c2.frame, m('local')), 'inactive')
    assertDropped(await one(c2.frame, m('local')), 'inactive')
    assertDropped(await one(c2.frame, m('local')), 'inactive')
    assert.equal(pds.calls, calls0 + 1, 'one getRepoStatus call for three commits')

    pds.statuses.set(did, { active: true })
    assertDropped(await one(c2.frame, m('local')), 'inactive') // still inside the backoff window
    assert.equal(pds.calls, calls0 + 1)
    await new Promise((r) => setTimeout(r, 350))
    assertAccepted(await one(c2.frame, m('local')))
    assert.equal(pds.calls, calls0 + 2)
    assert.equal((await account(did))?.upstream_status, 'active')
  })

  test('host at its account limit: the new account is created throttled; its commits and #account are dropped', async () => {
    const { kp, did, repo } = await newRepo('https://pds-full.example.com')
    const c1 = await buildCommit(repo, kp, [create()])
    assertDropped(await one(c1.frame, m('full')), 'throttled')
    const row = await account(did)
    assert.equal(row?.status, 'throttled')
    assert.equal(await hostCount('full'), 2)
    assertDropped(await one(accountFrame(did, false, 'deactivated'), m('full')), 'throttled')
    assert.equal((await account(did))?.upstream_status, 'deactivated', 'upstream status still recorded')
  })

  test('signature failure → one re-resolution → accepted after a key rotation (legacy key format)', async () => {
    const { kp, did, repo } = await newRepo('https://pds-a.example.com', { legacy: true })
    const c1 = await buildCommit(repo, kp, [create()], { seq: 1 })
    assertAccepted(await one(c1.frame, m('a')))
    const kp2 = await makeKeypair('k256')
    plc.docs.set(did, didDoc(did, kp2.did(), { pds: 'https://pds-a.example.com', legacy: true }))
    const hits = plc.hitCount(did)
    const c2 = await buildCommit(c1.repo, kp2, [create()], { seq: 2 })
    assertAccepted(await one(c2.frame, m('a')))
    assert.equal(plc.hitCount(did), hits + 1)
    // Signed by a key the document never had: dropped as a signature failure after one refresh.
    const evil = await makeKeypair('k256')
    const c3 = await buildCommit(c2.repo, evil, [create()], { seq: 3 })
    assertDropped(await one(c3.frame, m('a')), 'signature')
    assert.equal(plc.hitCount(did), hits + 2)
  })

  test('unresolvable DIDs are dropped as resolve_failed (404 and 5xx), never accepted unverified', async () => {
    const { kp, did, repo } = await newRepo('https://pds-a.example.com')
    plc.docs.delete(did)
    const c1 = await buildCommit(repo, kp, [create()])
    const r = await one(c1.frame, m('a'))
    assertDropped(r, 'resolve_failed')
    assert.match((r as { detail: string }).detail, /not_found/)
    const other = await newRepo('https://pds-a.example.com')
    plc.failures.set(other.did, 500)
    const c2 = await buildCommit(other.repo, other.kp, [create()])
    const r2 = await one(c2.frame, m('a'))
    assertDropped(r2, 'resolve_failed')
    assert.match((r2 as { detail: string }).detail, /error/)
    // negative cache: no second fetch within the TTL
    const hits = plc.hitCount(other.did)
    assertDropped(await one(c2.frame, m('a')), 'resolve_failed')
    assert.equal(plc.hitCount(other.did), hits)
  })

  test('default chain mode: a gap passes, flagged chainBreak', async () => {
    const { kp, repo } = await newRepo('https://pds-a.example.com')
    const c1 = await buildCommit(repo, kp, [create()], { seq: 1 })
    const c2 = await buildCommit(c1.repo, kp, [create()], { seq: 2 })
    const c3 = await buildCommit(c2.repo, kp, [create()], { seq: 3 })
    assertAccepted(await one(c1.frame, m('a')))
    const r = await one(c3.frame, m('a'))
    assertAccepted(r)
    assert.equal(r.chainBreak, true)
  })

  test('#info and unknown message types are ignored; garbage is a counted drop', async () => {
    const { encodeFrame } = await import('../../unit/validator/helpers.ts')
    const rs = await run(
      [encodeFrame('#info', { name: 'OutdatedCursor' }), encodeFrame('#future', { seq: 1 }), new Uint8Array([1, 2, 3])],
      [m('a'), m('a'), m('a')],
    )
    assert.equal(rs[0]!.kind, 'ignore')
    assert.equal(rs[1]!.kind, 'ignore')
    assert.equal(rs[2]!.kind, 'drop')
  })

  test('stats control returns a snapshot', async () => {
    const s = (await validate({ control: { type: 'stats' } })) as ValidatorStatsSnapshot
    assert.equal(s.shard, 0)
    assert.ok(s.identity.fetches > 0)
    assert.ok(s.accounts.created > 0)
    assert.ok(s.signatureRefreshes >= 2)
    assert.ok(s.repoStatus.checks >= 2 && s.repoStatus.cached >= 2)
  })
})

describe('strict chain mode', () => {
  before(async () => {
    await closeValidatorWorker()
    initValidatorWorker({ shard: 0, shards: 1, data: config({ strictChain: true }) })
  })
  after(async () => {
    await closeValidatorWorker()
    initValidatorWorker({ shard: 0, shards: 1, data: config() })
  })

  test('a chain break is dropped and desynchronizes the account until a #sync re-anchors it', async () => {
    const { kp, did, repo } = await newRepo('https://pds-a.example.com')
    const c1 = await buildCommit(repo, kp, [create()], { seq: 1 })
    const c2 = await buildCommit(c1.repo, kp, [create()], { seq: 2 })
    const c3 = await buildCommit(c2.repo, kp, [create()], { seq: 3 })
    // (build before c4: the shared blockstore drops c3's commit block when c4 is applied)
    const sync3 = await buildSync(c3.repo)
    const c4 = await buildCommit(c3.repo, kp, [create()], { seq: 4 })
    assertAccepted(await one(c1.frame, m('a')))
    assertDropped(await one(c3.frame, m('a')), 'chain_break')
    assert.equal((await account(did))?.desynchronized, true)
    assertDropped(await one(c4.frame, m('a')), 'desynchronized')
    const r = await one(sync3, m('a'))
    assertAccepted(r)
    assert.equal(r.event.kind, 'sync')
    assert.equal(r.event.repoState?.allowEqual, true)
    assert.equal(r.event.repoState?.rev, c3.repo.commit.rev)
    assert.equal((await account(did))?.desynchronized, false)
    assertAccepted(await one(c4.frame, m('a')))
    // #sync with the same rev as the current state passes (a PDS re-asserting its head)
    const again = await one(await buildSync(c4.repo), m('a'))
    assertAccepted(again)
    assertAccepted(await one(await buildSync(c4.repo), m('a')))
  })
})

describe('through the ShardedPool (2 shards)', () => {
  test('per-DID order holds across shards; stats arrive on the channel', async () => {
    const collector = new ValidatorStatsCollector()
    const pool = new ShardedPool<FrameMeta, FrameResult>({
      filename: new URL('../../../workers/validate.worker.ts', import.meta.url).href,
      shards: 2,
      maxQueueBytes: 1 << 20,
      maxBatchFrames: 16,
      maxBatchBytes: 1 << 20,
      workerData: config({ didConcurrency: 4 }),
      registry: new Registry(),
      log,
      crashResult: () => ({ kind: 'drop', reason: 'worker_crash' }),
    })
    try {
      const repos = await Promise.all(Array.from({ length: 6 }, () => newRepo('https://pds-b.example.com')))
      const perDid: Uint8Array[][] = []
      for (const r of repos) {
        let repo = r.repo
        const frames: Uint8Array[] = []
        for (let i = 0; i < 5; i++) {
          const c = await buildCommit(repo, r.kp, [create()], { seq: i + 1 })
          frames.push(c.frame)
          repo = c.repo
        }
        perDid.push(frames)
      }
      // Interleave DIDs as a firehose would.
      const pending: Array<{ did: string; i: number; p: Promise<FrameResult> }> = []
      let seq = 0
      for (let i = 0; i < 5; i++) {
        for (let d = 0; d < repos.length; d++) {
          pending.push({ did: repos[d]!.did, i, p: pool.submit(repos[d]!.did, perDid[d]![i]!, m('b', ++seq)) })
        }
      }
      const results = await Promise.all(pending.map((x) => x.p))
      results.forEach((r) => assertAccepted(r))
      assert.ok(
        results.every((r) => !(r as { chainBreak?: boolean }).chainBreak),
        'no chain breaks: order held',
      )
      const shardsUsed = new Set(repos.map((r) => pool.shardFor(r.did)))
      assert.equal(shardsUsed.size, 2, 'both shards used')
      await pool.broadcast({ type: 'stats' })
      for (let i = 0; i < 40 && collector.snapshots().length < 2; i++) await collector.nextSnapshot(50)
      assert.equal(collector.snapshots().length, 2)
      assert.equal(
        collector.sum((s) => s.accounts.created),
        repos.length,
      )
    } finally {
      collector.close()
      await pool.close()
    }
  })
})
