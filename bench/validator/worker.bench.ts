// Validated commits/s through the real validation worker (decode, account cache, host authority,
// status gate, full sync 1.1 validation, re-encode), with a warm identity cache (documents served by
// a loopback PLC and resolved during a warm-up pass) and warm account cache — first in-process on
// one thread, then through the ShardedPool with 2 shards. Postgres: DATABASE_URL, or an embedded
// cluster under .tmp/bench-pg.
// Run: node_modules/.bin/node bench/validator/worker.bench.ts [dids=40] [commitsPerDid=40] [curve=k256]
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { Registry } from 'prom-client'
import { createPool } from '../../src/core/db.ts'
import { startEmbeddedPostgres } from '../../src/core/embedded-postgres.ts'
import { createLogger } from '../../src/core/log.ts'
import { migrate } from '../../src/core/migrate.ts'
import { ShardedPool } from '../../src/pool/sharded-pool.ts'
import type { FrameMeta, FrameResult } from '../../src/pool/types.ts'
import { k256Backend } from '../../src/validator/keys.ts'
import { decodeEvent, validateCommit } from '../../src/validator/validate.ts'
import { verifierFromDidKey } from '../../src/validator/keys.ts'
import type { ValidatorWorkerConfig } from '../../src/validator/worker-config.ts'
import validate, { closeValidatorWorker, initValidatorWorker } from '../../workers/validate.worker.ts'
import { FakePlc, didDoc, packTask, randomPlcDid } from '../../test/integration/validator/helpers.ts'
import { buildCommit, create, createRepo, makeKeypair, type Curve } from '../../test/unit/validator/helpers.ts'

const DIDS = Number(process.argv[2] ?? 40)
const PER_DID = Number(process.argv[3] ?? 40)
const CURVE = (process.argv[4] ?? 'k256') as Curve
const BATCH = 64
const root = fileURLToPath(new URL('../..', import.meta.url))
const log = createLogger('silent')

let adminUrl = process.env.DATABASE_URL
let stopPg: (() => Promise<void>) | undefined
if (!adminUrl) {
  const epg = await startEmbeddedPostgres({
    dataDir: path.join(root, '.tmp', 'bench-pg'),
    log,
    database: 'postgres',
    settings: { fsync: 'off' },
  })
  const c = epg.connection
  adminUrl = `postgresql://${c.user}@localhost/${c.database}?host=${encodeURIComponent(String(c.host))}`
  stopPg = () => epg.stop()
}
const dbName = `bench_${Date.now().toString(36)}`
{
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${dbName}`)
  await admin.end()
}
const u = new URL(adminUrl)
u.pathname = '/' + dbName
const dbUrl = u.toString()
const db = createPool(dbUrl, { max: 2, log })
await migrate(db, log)
const hostname = 'pds.bench.example.com'
const { rows } = await db.query<{ id: number }>('INSERT INTO host (hostname, account_limit) VALUES ($1, 1000000) RETURNING id', [hostname])
const hostId = rows[0]!.id
const plc = await new FakePlc().start()

// --- fixtures: DIDS repos × PER_DID chained single-create commits
const t0 = performance.now()
const perDid: Array<{ did: string; key: string; frames: Uint8Array[] }> = []
for (let d = 0; d < DIDS; d++) {
  const kp = await makeKeypair(CURVE)
  const did = randomPlcDid()
  plc.docs.set(did, didDoc(did, kp.did(), { pds: `https://${hostname}` }))
  let repo = await createRepo(kp, did, 20)
  const frames: Uint8Array[] = []
  for (let i = 0; i < PER_DID; i++) {
    const c = await buildCommit(repo, kp, [create()], { seq: i + 1 })
    frames.push(c.frame)
    repo = c.repo
  }
  perDid.push({ did, key: kp.did(), frames })
}
const genSeconds = (performance.now() - t0) / 1000
let seq = 0
const meta = (): FrameMeta => ({ hostId, hostname, upstreamSeq: ++seq, receivedAt: Date.now() })
// Firehose-like interleaving: commit i of every DID, then commit i+1 ...
const warm: Array<{ did: string; frame: Uint8Array }> = perDid.map((p) => ({ did: p.did, frame: p.frames[0]! }))
const timed: Array<{ did: string; frame: Uint8Array }> = []
for (let i = 1; i < PER_DID; i++) for (const p of perDid) timed.push({ did: p.did, frame: p.frames[i]! })
const avgBytes = timed.reduce((a, x) => a + x.frame.length, 0) / timed.length

function check(results: FrameResult[], what: string): void {
  const bad = results.filter((r) => r.kind !== 'accept')
  if (bad.length) throw new Error(`${what}: ${bad.length} not accepted, e.g. ${JSON.stringify(bad[0])}`)
}

const cfg: ValidatorWorkerConfig = {
  database: dbUrl,
  dbPoolSize: 2,
  plcUrl: plc.url,
  allowInsecureHosts: true,
  strictChain: false,
  identityCacheSize: 100_000,
  identityCacheTtlMs: 3_600_000,
  identityNegativeTtlMs: 60_000,
  identityRefreshIntervalMs: 60_000,
  resolveTimeoutMs: 5000,
  resolveConcurrency: 16,
  accountCacheSize: 100_000,
  repoStatusRecheckMs: 60_000,
  repoStatusMaxIntervalMs: 3_600_000,
  didConcurrency: 32,
  logLevel: 'silent',
  statsIntervalMs: 0,
}

// --- pure validation on the same frames (no worker shell), for reference
const nowMs = Date.now()
const verifiers = new Map(perDid.map((p) => [p.did, verifierFromDidKey(p.key)!]))
let ta = 0
let pureRate = 0
for (let pass = 0; pass < 2; pass++) {
  // pass 0 warms the JIT; the worker phases below run after it too
  ta = performance.now()
  for (const x of timed) {
    const d = decodeEvent(x.frame)
    if (d.kind !== 'event' || d.event.type !== '#commit') throw new Error('bad fixture')
    const r = validateCommit(d.event, null, verifiers.get(x.did)!, { nowMs })
    if (!r.ok) throw new Error(`fixture invalid: ${r.reason}`)
  }
  pureRate = timed.length / ((performance.now() - ta) / 1000)
}

// --- 1. one worker, in-process
initValidatorWorker({ shard: 0, shards: 1, data: cfg })
check(
  (await validate(
    packTask(
      warm.map((x) => x.frame),
      warm.map(meta),
    ),
  )) as FrameResult[],
  'warm-up',
)
ta = performance.now()
for (let i = 0; i < timed.length; i += BATCH) {
  const chunk = timed.slice(i, i + BATCH)
  check(
    (await validate(
      packTask(
        chunk.map((x) => x.frame),
        chunk.map(meta),
      ),
    )) as FrameResult[],
    'in-process',
  )
}
const workerRate = timed.length / ((performance.now() - ta) / 1000)
await closeValidatorWorker()

// --- 2. ShardedPool, 2 shards (the rows created above are reused; repo state starts empty, as
// nothing persisted it, so the pool's workers start their chains at the first commit they see)
const pool = new ShardedPool<FrameMeta, FrameResult>({
  filename: new URL('../../workers/validate.worker.ts', import.meta.url).href,
  shards: 2,
  maxQueueBytes: 8 << 20,
  maxBatchFrames: BATCH,
  maxBatchBytes: 1 << 20,
  workerData: cfg,
  registry: new Registry(),
  log,
  crashResult: () => ({ kind: 'drop', reason: 'worker_crash' }),
})
check(await Promise.all(warm.map((x) => pool.submit(x.did, x.frame, meta()))), 'pool warm-up')
ta = performance.now()
const results = await Promise.all(timed.map((x) => pool.submit(x.did, x.frame, meta())))
const poolRate = timed.length / ((performance.now() - ta) / 1000)
check(results, 'pool')
await pool.close()

console.log(
  `K-256 backend: ${k256Backend}; Node ${process.version}; ${CURVE}; ${DIDS} DIDs × ${PER_DID} chained single-create commits (avg frame ${Math.round(avgBytes)} B; fixtures built in ${genSeconds.toFixed(1)} s)`,
)
console.log(`timed: ${timed.length} commits after a warm-up pass (identity + account caches warm), batches of ${BATCH}`)
const fmt = (n: number) => Math.round(n).toLocaleString('en-US')
console.log(`| path | validated commits/s | µs/commit |`)
console.log(`|---|---|---|`)
console.log(`| validateCommit only (decode + validate, no shell) | ${fmt(pureRate)} | ${(1e6 / pureRate).toFixed(1)} |`)
console.log(`| worker default export, in-process, 1 thread | ${fmt(workerRate)} | ${(1e6 / workerRate).toFixed(1)} |`)
console.log(`| ShardedPool, 2 shards (main thread + 2 workers on this box) | ${fmt(poolRate)} | ${(1e6 / poolRate).toFixed(1)} |`)

await db.end()
await plc.close()
{
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  await admin.query(`DROP DATABASE ${dbName} WITH (FORCE)`)
  await admin.end()
}
await stopPg?.()
