/**
 * Intake benchmark: frames/s from N upstream hosts through the subscribers (route, seq check,
 * rate limiter, room check, cursor tracking) into a 2-shard ShardedPool whose workers ignore
 * every frame (validation stubbed), for 1, 100 and 1,000 hosts on loopback. The upstreams run in
 * a child process (bench/subscriber/upstreams.ts) and push ~1 KB frames as fast as we read.
 *
 *   node_modules/.bin/node bench/subscriber/intake.bench.ts [seconds-per-case] [--hosts=1,100,1000] [--queue-mb=4]
 *
 * Runs its own embedded PostgreSQL (.tmp/bench-subscriber-pg, fsync off) for the host table.
 * RSS is this process's (subscribers + pool main side + worker threads), sampled every 100 ms.
 */
import { fork } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Registry } from 'prom-client'
import { ApiServer } from '../../src/api/http.ts'
import { loadConfig } from '../../src/core/config.ts'
import { createPool } from '../../src/core/db.ts'
import { startEmbeddedPostgres } from '../../src/core/embedded-postgres.ts'
import { createLogger } from '../../src/core/log.ts'
import { migrate } from '../../src/core/migrate.ts'
import { ShardedPool } from '../../src/pool/sharded-pool.ts'
import type { FrameMeta, FrameResult } from '../../src/pool/types.ts'
import { createSubscriberComponent } from '../../src/subscriber/component.ts'
import type { IngestSink } from '../../src/subscriber/ingest.ts'

const args = process.argv.slice(2)
const seconds = Number(args.find((a) => /^\d+(\.\d+)?$/.test(a)) ?? 5)
const queueMB = Number(args.find((a) => a.startsWith('--queue-mb='))?.slice(11) ?? 4)
const hostCases = (args.find((a) => a.startsWith('--hosts='))?.slice(8) ?? '1,100,1000').split(',').map(Number)
const root = fileURLToPath(new URL('../..', import.meta.url))
const log = createLogger('error', { pretty: false })

const pg = await startEmbeddedPostgres({
  dataDir: path.join(root, '.tmp', 'bench-subscriber-pg'),
  log,
  database: 'relay_bench',
  settings: { fsync: 'off' },
})
const db = createPool(pg.connection, { max: 4, log })

interface Result {
  hosts: number
  connectMs: number
  framesPerSec: number
  rssMaxMB: number
  rssStartMB: number
  inFlightMax: number
}
const results: Result[] = []

for (const hosts of hostCases) {
  await db.query('DROP SCHEMA public CASCADE; CREATE SCHEMA public')
  await migrate(db, log)
  const child = fork(fileURLToPath(new URL('./upstreams.ts', import.meta.url)), [String(hosts)], {
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  })
  const ports = await new Promise<number[]>((resolve, reject) => {
    let buf = ''
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString()
      const nl = buf.indexOf('\n')
      if (nl >= 0) resolve(JSON.parse(buf.slice(0, nl)).ports)
    })
    child.once('exit', (c) => reject(new Error(`upstreams exited ${c}`)))
  })
  await db.query(
    `INSERT INTO host (hostname, no_ssl, account_limit, admin_added, last_event_at) SELECT 'localhost:' || p, true, 100, true, now() FROM unnest($1::int[]) p`,
    [ports],
  )

  const registry = new Registry()
  const pool = new ShardedPool<FrameMeta, FrameResult>({
    filename: fileURLToPath(new URL('./ignore.worker.ts', import.meta.url)),
    shards: 2,
    maxQueueBytes: queueMB << 20,
    maxBatchFrames: 256,
    maxBatchBytes: 1 << 20,
    registry,
    log,
    crashResult: () => ({ kind: 'drop', reason: 'worker_crash' }),
  })
  let done = 0
  const sink: IngestSink = {
    hasRoom: (did, bytes) => pool.hasRoom(did, bytes),
    waitForRoom: (did, bytes) => pool.waitForRoom(did, bytes),
    submit: (did, frame, meta) =>
      pool.submit(did, frame, meta).then((r) => {
        done++
        return r
      }),
  }
  const config = loadConfig({ env: { RELAY_STARTUP_CONNECT_WINDOW: '0', RELAY_LOG_LEVEL: 'error' } }).config
  const api = new ApiServer({ version: 'bench', log })
  const sub = createSubscriberComponent(
    { config, log, registry, api, db, build: { version: 'bench', commit: 'x', node: process.version } },
    sink,
    { registerRoute: false, limits: () => ({ perSecond: 1e9, perHour: 1e12, perDay: 1e12 }) },
  )
  const rssStart = process.memoryUsage().rss
  const t0 = Date.now()
  await sub.start!()
  while (sub.connectedHosts().length < hosts) await new Promise((r) => setTimeout(r, 20))
  const connectMs = Date.now() - t0
  let rssMax = 0
  let inFlightMax = 0
  const sampler = setInterval(() => {
    rssMax = Math.max(rssMax, process.memoryUsage().rss)
    inFlightMax = Math.max(inFlightMax, sub.cursors.totalInFlight())
  }, 100)
  await new Promise((r) => setTimeout(r, 1000)) // warm-up
  const d0 = done
  const s0 = Date.now()
  await new Promise((r) => setTimeout(r, seconds * 1000))
  const framesPerSec = ((done - d0) * 1000) / (Date.now() - s0)
  clearInterval(sampler)
  await sub.stop!()
  await pool.close()
  child.kill()
  const r: Result = {
    hosts,
    connectMs,
    framesPerSec: Math.round(framesPerSec),
    rssMaxMB: Math.round(rssMax / 1e6),
    rssStartMB: Math.round(rssStart / 1e6),
    inFlightMax,
  }
  results.push(r)
  console.log(JSON.stringify(r))
}

console.log(`\npool: 2 shards, ${queueMB} MiB queue per shard, stub worker (ignore)`)
console.log('hosts | connect all | frames/s (~1 KB) | RSS start → max | max frames in flight')
for (const r of results)
  console.log(
    `${String(r.hosts).padStart(5)} | ${String(r.connectMs).padStart(8)} ms | ${String(r.framesPerSec).padStart(16)} | ${r.rssStartMB} → ${r.rssMaxMB} MB | ${r.inFlightMax}`,
  )
await db.end()
await pg.stop()
