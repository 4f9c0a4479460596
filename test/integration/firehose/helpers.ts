// Shared by the firehose tests: the whole relay (in this process, or as a child process) fed by a
// scripted upstream serving real signed events, and downstream consumers (raw `ws` and
// @atproto/sync's Firehose) whose view is compared with the event log in Postgres.

import assert from 'node:assert/strict'
import { decodeFirst } from '@atcute/cbor'
import { IdResolver, MemoryCache } from '@atproto/identity'
import { Firehose } from '@atproto/sync'
import pg from 'pg'
import { WebSocket } from 'ws'
import { loadConfig } from '../../../src/core/config.ts'
import { createLogger } from '../../../src/core/log.ts'
import { pipelineComponents } from '../../../src/pipeline.ts'
import { Relay } from '../../../src/relay.ts'
import type { FakeUpstream } from '../../helpers/fake-upstream.ts'
import { freePort, httpGet, spawnRelay, waitFor, type RelayProcess } from '../../helpers/relay-process.ts'
import type { BuiltFrame } from '../../helpers/signed-repo.ts'

export const ADMIN_PASSWORD = 'firehose-test-admin'
export const adminAuth = 'Basic ' + Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')
export const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent', { pretty: false })
export const SUBSCRIBE = '/xrpc/com.atproto.sync.subscribeRepos'

export function range(a: number, b: number): number[] {
  return Array.from({ length: Math.max(0, b - a + 1) }, (_, i) => a + i)
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * Environment for a relay fed by `up`: the upstream is trusted (so its rate limit, 5000/s, and
 * account limit stay out of the way) and insecure localhost hosts are allowed.
 */
export function relayEnv(dbUrl: string, plcUrl: string, up: FakeUpstream, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: dbUrl,
    RELAY_PLC_URL: plcUrl,
    RELAY_ALLOW_INSECURE_HOSTS: 'true',
    RELAY_ADMIN_PASSWORD: ADMIN_PASSWORD,
    RELAY_TRUSTED_DOMAINS: up.hostname,
    RELAY_STARTUP_CONNECT_WINDOW: '0s',
    RELAY_LISTEN_HOST: '127.0.0.1',
    RELAY_WORKERS: '2',
    // The DID server shares a loaded 2-core box (and, in-process, the relay's event loop): a 5 s
    // resolution timeout drops valid events there (resolve_failed, by design never retried).
    RELAY_RESOLVE_TIMEOUT: '30s',
    RELAY_LOG_LEVEL: 'warn',
    ...extra,
  }
}

// ---- the relay ------------------------------------------------------------------------------

export interface RelayHandle {
  base: string
  ws: string
  close(): Promise<void>
}

export interface InProcessRelay extends RelayHandle {
  relay: Relay
  metric(name: string, labels?: Record<string, string>): Promise<number>
  /** every series of a metric: labels → value */
  metricSeries(name: string): Promise<Array<{ labels: Record<string, unknown>; value: number }>>
  query<T = any>(sql: string, params?: unknown[]): Promise<T[]>
}

export async function startInProcessRelay(env: Record<string, string>): Promise<InProcessRelay> {
  const { config } = loadConfig({ env: { RELAY_PORT: '0', RELAY_PROBE_PORT: '0', ...env } })
  const relay = new Relay({ config, log, components: pipelineComponents })
  try {
    await relay.start()
  } catch (err) {
    await relay.stop().catch(() => {})
    throw err
  }
  const base = `http://127.0.0.1:${relay.apiPort}`
  return {
    relay,
    base,
    ws: base.replace(/^http/, 'ws'),
    close: () => relay.stop(),
    async metric(name, labels = {}) {
      const m = await relay.registry.getSingleMetric(name)?.get()
      if (!m) return 0
      let sum = 0
      for (const v of m.values) if (Object.entries(labels).every(([k, l]) => String(v.labels[k]) === l)) sum += v.value
      return sum
    },
    async metricSeries(name) {
      const m = await relay.registry.getSingleMetric(name)?.get()
      return (m?.values ?? []).map((v) => ({ labels: v.labels, value: v.value }))
    },
    async query(sql, params = []) {
      return (await relay.db!.query(sql, params)).rows
    },
  }
}

export interface ChildRelay extends RelayHandle {
  proc: RelayProcess
  port: number
  probePort: number
}

/** The relay as `node src/main.ts` (the same ports when restarting, so consumers' URLs hold). */
export async function startChildRelay(env: Record<string, string>, ports?: { port: number; probePort: number }): Promise<ChildRelay> {
  const port = ports?.port ?? (await freePort())
  const probePort = ports?.probePort ?? (await freePort())
  // info: startup is detected from the 'relay started' line
  const proc = spawnRelay({ ...env, RELAY_LOG_LEVEL: 'info', RELAY_PORT: String(port), RELAY_PROBE_PORT: String(probePort) })
  try {
    await proc.waitForLog(/relay started/, 60_000)
    await waitFor(async () => (await httpGet(`http://127.0.0.1:${probePort}/_readyz`)).status === 200 || undefined, {
      what: 'relay ready',
      timeoutMs: 30_000,
    })
  } catch (err) {
    proc.proc.kill('SIGKILL')
    throw new Error(`${(err as Error).message}\n--- relay output ---\n${proc.output().slice(-6000)}`)
  }
  const base = `http://127.0.0.1:${port}`
  return {
    proc,
    port,
    probePort,
    base,
    ws: base.replace(/^http/, 'ws'),
    async close() {
      if (proc.proc.exitCode !== null || proc.proc.signalCode !== null) return
      proc.proc.kill('SIGTERM')
      await proc.exited
    },
  }
}

/** Sum of a metric's series (matching `labels`) scraped from a child relay's /metrics. */
export async function probeMetric(relay: ChildRelay, name: string, labels: Record<string, string> = {}): Promise<number> {
  const res = await httpGet(`http://127.0.0.1:${relay.probePort}/metrics`)
  let sum = 0
  for (const line of res.body.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line)
    if (!m || m[1] !== name) continue
    const lbl = m[2] ?? ''
    if (Object.entries(labels).every(([k, v]) => lbl.includes(`${k}="${v}"`))) sum += Number(m[3])
  }
  return sum
}

export async function adminPost(base: string, path: string, body: unknown): Promise<unknown> {
  const res = await fetch(base + path, {
    method: 'POST',
    headers: { authorization: adminAuth, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  })
  const text = await res.text()
  if (!res.ok) throw new Error(`POST ${path} → ${res.status} ${text}`)
  return text ? JSON.parse(text) : undefined
}

/** Admin requestCrawl of the fake upstream; resolves once the relay's subscription is open. */
export async function addUpstream(relay: RelayHandle, up: FakeUpstream): Promise<void> {
  const before = up.connections.length
  await adminPost(relay.base, '/admin/pds/requestCrawl', { hostname: up.hostname })
  await waitFor(() => (up.openConnections.length > 0 && up.connections.length > before) || undefined, {
    what: 'relay subscribed upstream',
    timeoutMs: 10_000,
  })
}

/** Pushes frames into the upstream's log (and to the relay), `perSecond` at most (0 = at once). */
export async function feed(up: FakeUpstream, frames: BuiltFrame[], perSecond = 0, stop?: () => boolean): Promise<number> {
  if (perSecond <= 0) {
    for (const f of frames) up.appendFrame(f.seq, f.did, f.frame)
    return frames.length
  }
  const t0 = performance.now()
  let sent = 0
  while (sent < frames.length) {
    if (stop?.()) break
    const due = Math.min(frames.length, Math.floor(((performance.now() - t0) / 1000) * perSecond) + 1)
    for (; sent < due; sent++) up.appendFrame(frames[sent]!.seq, frames[sent]!.did, frames[sent]!.frame)
    await sleep(10)
  }
  return sent
}

// ---- decoding frames -------------------------------------------------------------------------

export interface Decoded {
  op: number
  t?: string
  body: Record<string, any>
}

export function decodeFrame(bytes: Uint8Array): Decoded {
  const [header, rest] = decodeFirst(bytes)
  const [body] = decodeFirst(rest)
  return { op: header.op, t: header.t, body }
}

/**
 * The identity of an upstream event, independent of which seq it carries: commits by (did, rev),
 * #identity and #account by (did, time) (the time is the upstream's, passed through).
 */
export function upstreamKey(t: string | undefined, body: Record<string, any>): string {
  switch (t) {
    case '#commit':
      return `commit ${body.repo} ${body.rev}`
    case '#identity':
      return `identity ${body.did} ${body.time}`
    case '#account':
      return `account ${body.did} ${body.time} ${body.active}`
    default:
      return `${t} ${JSON.stringify(body)}`
  }
}

export function builtKey(f: BuiltFrame): string {
  const d = decodeFrame(f.frame)
  return upstreamKey(d.t, d.body)
}

export interface LogRow {
  seq: number
  did: string
  frame: Uint8Array
  key: string
  t?: string
}

export async function readLog(
  query: (sql: string) => Promise<Array<{ seq: string | number; did: string; frame: Uint8Array }>>,
): Promise<LogRow[]> {
  const rows = await query('SELECT seq, did, frame FROM event ORDER BY seq')
  return rows.map((r) => {
    const frame = new Uint8Array(r.frame)
    const d = decodeFrame(frame)
    assert.equal(d.body.seq, Number(r.seq), `stored frame ${r.seq} carries its seq`)
    return { seq: Number(r.seq), did: r.did, frame, key: upstreamKey(d.t, d.body), t: d.t }
  })
}

export async function withPg<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  try {
    return await fn(c)
  } finally {
    await c.end()
  }
}

/** Each key at most once; returns the duplicated ones. */
export function duplicates(keys: string[]): string[] {
  const seen = new Set<string>()
  const dup: string[] = []
  for (const k of keys) {
    if (seen.has(k)) dup.push(k)
    seen.add(k)
  }
  return dup
}

/** `got` holds exactly the `expected` events, each once, and each DID's events in upstream order. */
export function assertSameEvents(got: string[], expected: string[], what: string): void {
  assert.deepEqual(duplicates(got), [], `${what}: an event twice`)
  assert.deepEqual([...got].sort(), [...expected].sort(), `${what}: the same events`)
  const did = (k: string) => k.split(' ')[1]!
  const perDid = (keys: string[]) => {
    const m = new Map<string, string[]>()
    for (const k of keys) m.set(did(k), [...(m.get(did(k)) ?? []), k])
    return m
  }
  const g = perDid(got)
  for (const [d, keys] of perDid(expected)) assert.deepEqual(g.get(d), keys, `${what}: order of ${d}`)
}

// ---- consumers -------------------------------------------------------------------------------

/**
 * Consumers still open when a test fails would keep the test process alive (the Firehose
 * reconnects forever): every consumer registers here and `closeConsumers()` (in `after`) ends them.
 */
const openConsumers = new Set<{ close(): Promise<void> }>()

export async function closeConsumers(): Promise<void> {
  for (const c of [...openConsumers]) await c.close().catch(() => {})
  openConsumers.clear()
}

export interface RawMsg {
  op: number
  t?: string
  seq?: number
  body: Record<string, any>
  bytes: Uint8Array
  at: number
}

/** A plain `ws` consumer keeping every message (events, #info, error frames) and its bytes. */
export class RawConsumer {
  readonly url: string
  readonly msgs: RawMsg[] = []
  readonly ws: WebSocket
  closed: { code: number; reason: string } | null = null
  readonly opened: Promise<void>
  readonly closedP: Promise<{ code: number; reason: string }>

  constructor(base: string, cursor?: number | string) {
    this.url = `${base}${SUBSCRIBE}${cursor === undefined ? '' : `?cursor=${cursor}`}`
    this.ws = new WebSocket(this.url)
    openConsumers.add(this)
    this.ws.on('message', (data: Buffer) => {
      const bytes = new Uint8Array(data)
      const d = decodeFrame(bytes)
      this.msgs.push({
        op: d.op,
        t: d.t,
        seq: typeof d.body.seq === 'number' ? d.body.seq : undefined,
        body: d.body,
        bytes,
        at: Date.now(),
      })
    })
    this.ws.on('error', () => {})
    this.opened = new Promise<void>((resolve, reject) => {
      this.ws.once('open', () => resolve())
      this.ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)))
      this.ws.once('error', reject)
    })
    this.opened.catch(() => {})
    this.closedP = new Promise((resolve) =>
      this.ws.once('close', (code, reason) => {
        this.closed = { code, reason: reason.toString() }
        resolve(this.closed)
      }),
    )
  }

  static async open(base: string, cursor?: number | string): Promise<RawConsumer> {
    const c = new RawConsumer(base, cursor)
    await c.opened
    return c
  }

  /** Repo events (#commit/#sync/#identity/#account), in arrival order. */
  events(): RawMsg[] {
    return this.msgs.filter((m) => m.op === 1 && m.t !== '#info')
  }

  seqs(): number[] {
    return this.events().map((m) => m.seq!)
  }

  lastSeq(): number | undefined {
    return this.events().at(-1)?.seq
  }

  async until(pred: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    await waitFor(() => pred() || undefined, { what, timeoutMs, intervalMs: 10 }).catch((err: Error) => {
      throw new Error(`${err.message} (at the timeout: ${this.events().length} events, last ${this.lastSeq()})`)
    })
  }

  async close(): Promise<void> {
    openConsumers.delete(this)
    if (this.closed) return
    this.ws.resume()
    this.ws.close()
    await Promise.race([this.closedP, sleep(2000)])
    this.ws.terminate()
  }
}

export interface SyncConsumer {
  events: Array<{ event: string; seq: number; did: string; rev?: string }>
  errors: Error[]
  destroy(): Promise<void>
}

/**
 * @atproto/sync's Firehose: validates every message against the lexicons and verifies each
 * commit's signature and inclusion proofs with keys resolved from `plcUrl`.
 */
export function syncFirehose(wsBase: string, plcUrl: string, opts: { cursor?: number } = {}): SyncConsumer {
  const events: SyncConsumer['events'] = []
  const errors: Error[] = []
  let cursor = opts.cursor
  const fh = new Firehose({
    service: wsBase,
    idResolver: new IdResolver({ plcUrl, didCache: new MemoryCache(), fetch: globalThis.fetch }),
    getCursor: () => cursor,
    subscriptionReconnectDelay: 200,
    maxReconnectSeconds: 1,
    handleEvent: (evt) => {
      events.push({ event: evt.event, seq: evt.seq, did: evt.did, rev: 'rev' in evt ? (evt.rev as string) : undefined })
      cursor = evt.seq
    },
    onError: (err) => {
      errors.push(err)
    },
  })
  void fh.start()
  let destroyed: Promise<unknown> | undefined
  const handle = {
    close: async (): Promise<void> => {
      await (destroyed ??= Promise.race([fh.destroy(), sleep(3000)]))
    },
  }
  openConsumers.add(handle)
  return {
    events,
    errors,
    destroy: () => {
      openConsumers.delete(handle)
      return handle.close()
    },
  }
}
