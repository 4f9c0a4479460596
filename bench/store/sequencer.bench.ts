/**
 * Sequencer benchmark: events/s persisted (synchronous_commit on) for batch sizes 1, 10, 100,
 * 1000 with ~1.5 KB frames, the commit latency per batch (p50/p99), and the submit-to-commit
 * latency of a paced stream at a realistic rate with the default batching settings.
 *
 *   node_modules/.bin/node bench/store/sequencer.bench.ts [seconds-per-case] [--fsync-off] [--methods=values,unnest]
 *
 * Runs its own embedded PostgreSQL (data in .tmp/bench-store-pg), fsync on unless --fsync-off, so the
 * figures include the WAL flush a real deployment pays at every commit.
 *
 * Profiles: "events" = event rows only; "full" = every event also advances an account's repo
 * state, carries an upstream host seq (cursor written in the batch) and one collection delta.
 */
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { createPool, type Pool } from '../../src/core/db.ts'
import { startEmbeddedPostgres } from '../../src/core/embedded-postgres.ts'
import { createLogger } from '../../src/core/log.ts'
import { migrate } from '../../src/core/migrate.ts'
import { Sequencer, type AcceptedEvent, type SequencerOptions } from '../../src/store/sequencer.ts'
import { makeEvent } from '../../test/integration/store/helpers.ts'

const args = process.argv.slice(2)
const seconds = Number(args.find((a) => /^\d+(\.\d+)?$/.test(a)) ?? 2)
const fsyncOff = args.includes('--fsync-off')
const methods = (args.find((a) => a.startsWith('--methods='))?.slice(10) ?? 'values,unnest').split(',') as Array<'values' | 'unnest'>
const root = fileURLToPath(new URL('../..', import.meta.url))
const log = createLogger('error', { pretty: false })
const ACCOUNTS = 2000

const pg = await startEmbeddedPostgres({
  dataDir: path.join(root, '.tmp', 'bench-store-pg'),
  log,
  database: 'relay_bench',
  settings: fsyncOff ? { fsync: 'off' } : {},
})
const pool = createPool(pg.connection, { max: 4, log })

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!
}

async function resetSchema(db: Pool): Promise<number> {
  await db.query('DROP SCHEMA public CASCADE; CREATE SCHEMA public')
  await migrate(db, log)
  const { rows } = await db.query<{ id: number }>(
    `INSERT INTO host (hostname, account_limit) VALUES ('bench.example.com', 1000000) RETURNING id`,
  )
  const host = rows[0]!.id
  await db.query(`INSERT INTO account (did, host_id) SELECT 'did:plc:bench' || i, $1 FROM generate_series(0, $2 - 1) i`, [host, ACCOUNTS])
  await db.query('VACUUM ANALYZE')
  return host
}

// Events are pre-built so the bench measures the sequencer, not CBOR encoding.
function buildEvents(n: number, full: boolean, host: number): AcceptedEvent[] {
  const base = makeEvent('did:plc:bench0', { kind: 'commit', padBytes: 1400 })
  const out: AcceptedEvent[] = []
  for (let i = 0; i < n; i++) {
    const did = `did:plc:bench${i % ACCOUNTS}`
    const ev: AcceptedEvent = { ...base, did }
    if (full) {
      ev.repoState = { rev: '3l' + String(1_000_000_000 + i).padStart(11, '0'), commitCid: 'bafyreicommit' + i, dataCid: 'bafyreidata' + i }
      ev.hostId = host
      ev.upstreamSeq = i + 1
      ev.collectionDeltas = [{ collection: 'app.bsky.feed.like', delta: i % 3 === 2 ? -1 : 1 }]
    }
    out.push(ev)
  }
  return out
}

interface Result {
  events: number
  perSec: number
  commitP50: number
  commitP99: number
  batchMean: number
}

/** Closed loop: keeps 2 full batches outstanding, so every batch is full and the DB never idles. */
async function throughput(batch: number, method: 'values' | 'unnest', full: boolean, host: number): Promise<Result> {
  const commits: number[] = []
  let batches = 0
  const opts: SequencerOptions = {
    db: pool,
    log,
    maxBatchEvents: batch,
    maxBatchDelayMs: 50,
    insertMethod: method,
    cursorFlushIntervalMs: 0,
    onCommitted: (b) => {
      commits.push(b.commitMs)
      batches++
    },
  }
  if (full) opts.cursorProvider = (m) => new Map([...m].map(([h, s]) => [h, { seq: s.at(-1)!, doneAbove: [] }]))
  const s = new Sequencer(opts)
  await s.start()
  const pool_ = buildEvents(Math.max(4 * batch, 4000), full, host)
  const inflight = 2 * batch
  let i = 0
  let done = 0
  const t0 = performance.now()
  const deadline = t0 + seconds * 1000
  await new Promise<void>((resolve) => {
    let outstanding = 0
    const pump = () => {
      while (outstanding < inflight && performance.now() < deadline) {
        outstanding++
        s.submit(pool_[i++ % pool_.length]!).then(() => {
          outstanding--
          done++
          if (performance.now() < deadline) {
            if (outstanding <= batch) pump()
          } else if (outstanding === 0) resolve()
        })
      }
      if (outstanding === 0) resolve()
    }
    pump()
  })
  const elapsed = (performance.now() - t0) / 1000
  await s.close()
  return {
    events: done,
    perSec: done / elapsed,
    commitP50: pct(commits, 50),
    commitP99: pct(commits, 99),
    batchMean: done / Math.max(1, batches),
  }
}

/** Paced stream at `rate` ev/s with default batching (1000 / 5 ms): submit-to-commit latency. */
async function paced(rate: number, host: number): Promise<{ p50: number; p99: number; batchMean: number; perSec: number }> {
  let batches = 0
  const s = new Sequencer({
    db: pool,
    log,
    cursorFlushIntervalMs: 0,
    cursorProvider: (m) => new Map([...m].map(([h, v]) => [h, { seq: v.at(-1)!, doneAbove: [] }])),
    onCommitted: () => batches++,
  })
  await s.start()
  const events = buildEvents(4000, true, host)
  const lat: number[] = []
  const ps: Promise<unknown>[] = []
  const t0 = performance.now()
  const total = Math.round(rate * seconds)
  let sent = 0
  while (sent < total) {
    const due = Math.floor(((performance.now() - t0) / 1000) * rate)
    while (sent < Math.min(due, total)) {
      const st = performance.now()
      ps.push(s.submit(events[sent % events.length]!).then(() => lat.push(performance.now() - st)))
      sent++
    }
    await new Promise((r) => setTimeout(r, 1))
  }
  await Promise.all(ps)
  const elapsed = (performance.now() - t0) / 1000
  await s.close()
  return { p50: pct(lat, 50), p99: pct(lat, 99), batchMean: sent / Math.max(1, batches), perSec: sent / elapsed }
}

const f = (n: number, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d })
console.log(
  `# sequencer bench: ~1.5 KB frames, synchronous_commit on, fsync ${fsyncOff ? 'off' : 'on'}, ${seconds}s per case, node ${process.version}`,
)
console.log('| profile | insert | batch | events/s | mean batch | commit p50 ms | commit p99 ms |')
console.log('|---|---|---|---|---|---|---|')
try {
  for (const full of [false, true]) {
    for (const method of methods) {
      for (const batch of [1, 10, 100, 1000]) {
        const host = await resetSchema(pool)
        const r = await throughput(batch, method, full, host)
        console.log(
          `| ${full ? 'full' : 'events'} | ${method} | ${batch} | ${f(r.perSec)} | ${f(r.batchMean, 1)} | ${f(r.commitP50, 2)} | ${f(r.commitP99, 2)} |`,
        )
      }
    }
  }
  console.log('\n| paced rate (full profile, defaults 1000 ev / 5 ms) | achieved ev/s | mean batch | submit→commit p50 ms | p99 ms |')
  console.log('|---|---|---|---|---|')
  for (const rate of [500, 5000, 20000]) {
    const host = await resetSchema(pool)
    const r = await paced(rate, host)
    console.log(`| ${f(rate)} ev/s | ${f(r.perSec)} | ${f(r.batchMean, 1)} | ${f(r.p50, 2)} | ${f(r.p99, 2)} |`)
  }
} finally {
  await pool.end()
  await pg.stop()
}
