// Shared by the subscriber tests: a database, a relay-like context, and a fake pipeline that
// "persists" frames in batches the way the sequencer does (cursorsFor inside the "transaction",
// host.last_seq written with it, committed() afterwards).

import { Registry } from 'prom-client'
import { ApiServer } from '../../../src/api/http.ts'
import { loadConfig, type Config } from '../../../src/core/config.ts'
import { createPool, type Pool } from '../../../src/core/db.ts'
import { createLogger } from '../../../src/core/log.ts'
import { migrate } from '../../../src/core/migrate.ts'
import type { FrameMeta, FrameResult } from '../../../src/pool/types.ts'
import { createSubscriberComponent, type SubscriberComponent, type SubscriberComponentOptions } from '../../../src/subscriber/component.ts'
import { CursorRegistry, type IngestSink } from '../../../src/subscriber/ingest.ts'
import { createTestDatabase, type TestDatabase } from '../../helpers/db.ts'

export const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent', { pretty: false })

export interface Persisted {
  hostId: number
  seq: number
  did: string
}

interface Pending {
  did: string
  meta: FrameMeta
  bytes: number
  resolve: (r: FrameResult) => void
}

/**
 * In-memory pipeline: frames wait in `pending` (bounded by `capacity` frames) until a flush
 * "commits" them. Auto-flushes every `intervalMs` unless `hold` is set.
 */
export class FakePipeline implements IngestSink {
  readonly persisted: Persisted[] = []
  pending: Pending[] = []
  capacity: number
  hold = false
  submitted = 0
  private roomWaiters: Array<() => void> = []
  private timer: NodeJS.Timeout
  readonly cursors: CursorRegistry
  readonly db: Pool
  /** cursors "written in the transaction", by host id */
  readonly savedCursors = new Map<number, number>()

  constructor(db: Pool, cursors: CursorRegistry, opts: { capacity?: number; intervalMs?: number } = {}) {
    this.db = db
    this.cursors = cursors
    this.capacity = opts.capacity ?? 1_000_000
    this.timer = setInterval(() => {
      if (!this.hold) void this.flush()
    }, opts.intervalMs ?? 5)
  }

  hasRoom(): boolean {
    return this.pending.length < this.capacity
  }

  waitForRoom(): Promise<void> {
    if (this.hasRoom()) return Promise.resolve()
    return new Promise((resolve) => this.roomWaiters.push(resolve))
  }

  submit(did: string, frame: Uint8Array, meta: FrameMeta): Promise<FrameResult> {
    this.submitted++
    return new Promise((resolve) => this.pending.push({ did, meta, bytes: frame.length, resolve }))
  }

  private flushing = false

  async flush(): Promise<void> {
    if (this.flushing || this.pending.length === 0) return
    this.flushing = true
    try {
      const batch = this.pending.splice(0, 500)
      const seqsByHost = new Map<number, number[]>()
      for (const p of batch) {
        let l = seqsByHost.get(p.meta.hostId)
        if (!l) seqsByHost.set(p.meta.hostId, (l = []))
        l.push(p.meta.upstreamSeq)
      }
      const cursors = this.cursors.cursorsFor(seqsByHost)
      for (const [host, { seq }] of cursors) {
        await this.db.query('UPDATE host SET last_seq = $2, updated_at = now() WHERE id = $1 AND last_seq < $2', [host, seq])
        this.savedCursors.set(host, seq)
      }
      for (const p of batch) this.persisted.push({ hostId: p.meta.hostId, seq: p.meta.upstreamSeq, did: p.did })
      this.cursors.committed(seqsByHost)
      for (const p of batch) p.resolve({ kind: 'ignore', reason: 'test' })
      while (this.roomWaiters.length > 0 && this.hasRoom()) this.roomWaiters.shift()!()
    } finally {
      this.flushing = false
    }
  }

  seqs(hostId?: number): number[] {
    return this.persisted.filter((p) => hostId === undefined || p.hostId === hostId).map((p) => p.seq)
  }

  close(): void {
    clearInterval(this.timer)
  }
}

export interface Harness {
  tdb: TestDatabase
  db: Pool
  api: ApiServer
  apiPort: number
  close(): Promise<void>
}

export async function harness(prefix: string): Promise<Harness> {
  const tdb = await createTestDatabase(prefix)
  const db = createPool(tdb.url, { max: 6, log })
  await migrate(db, log)
  const api = new ApiServer({ version: 'test', log })
  const apiPort = await api.listen(0, '127.0.0.1')
  return {
    tdb,
    db,
    api,
    apiPort,
    async close() {
      api.server.closeAllConnections()
      await api.stopAccepting()
      await db.end()
      await tdb.drop()
    },
  }
}

export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({ env: { RELAY_LOG_LEVEL: 'silent', ...env } }).config
}

export interface Started {
  sub: SubscriberComponent
  registry: Registry
  metric(name: string, labels?: Record<string, string>): Promise<number>
}

export async function startSubscriber(
  h: Harness,
  sink: IngestSink,
  opts: SubscriberComponentOptions & { env?: Record<string, string>; start?: boolean } = {},
): Promise<Started> {
  const registry = new Registry()
  const sub = createSubscriberComponent(
    { config: testConfig(opts.env), log, registry, api: h.api, db: h.db, build: { version: 'test', commit: 'x', node: process.version } },
    sink,
    {
      backoff: { baseMs: 20, capMs: 100 },
      registerRoute: false,
      lastEventFlushMs: 100,
      // The default limits (50/s for an untrusted host) would make bulk tests slow; the rate-limit
      // test sets its own.
      limits: () => ({ perSecond: 1_000_000, perHour: 1_000_000_000, perDay: 1_000_000_000 }),
      ...opts,
    },
  )
  if (opts.start !== false) await sub.start?.()
  return {
    sub,
    registry,
    async metric(name, labels = {}) {
      const m = await registry.getSingleMetric(name)?.get()
      if (!m) return 0
      let total = 0
      for (const v of m.values) {
        if (Object.entries(labels).every(([k, x]) => String(v.labels[k]) === x)) total += v.value
      }
      return total
    },
  }
}

export async function hostRow(
  db: Pool,
  hostname: string,
): Promise<{ id: number; status: string; last_seq: number; last_error: string | null; failure_count: number } | undefined> {
  const { rows } = await db.query('SELECT id, status, last_seq, last_error, failure_count FROM host WHERE hostname = $1', [hostname])
  return rows[0]
}

/** Insert a host directly (as a previous run would have left it). */
export async function insertHost(
  db: Pool,
  hostname: string,
  opts: { lastSeq?: number; adminAdded?: boolean; noSsl?: boolean; status?: string; lastEventAt?: Date | null } = {},
): Promise<number> {
  const { rows } = await db.query<{ id: number }>(
    `INSERT INTO host (hostname, no_ssl, status, last_seq, account_limit, admin_added, last_event_at)
     VALUES ($1, $2, $3, $4, 100, $5, $6) RETURNING id`,
    [
      hostname,
      opts.noSsl ?? true,
      opts.status ?? 'active',
      opts.lastSeq ?? -1,
      opts.adminAdded ?? true,
      opts.lastEventAt === undefined ? new Date() : opts.lastEventAt,
    ],
  )
  return rows[0]!.id
}
