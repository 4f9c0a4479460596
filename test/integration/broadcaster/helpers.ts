import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { decodeFirst, decode, encode } from '@atcute/cbor'
import { Registry } from 'prom-client'
import { WebSocket } from 'ws'
import { Broadcaster, SUBSCRIBE_REPOS_PATH } from '../../../src/broadcaster/broadcaster.ts'
import type { BroadcasterOptions } from '../../../src/broadcaster/broadcaster.ts'
import type { BroadcastFrame, EventLogReader } from '../../../src/broadcaster/types.ts'

/** A synthetic persisted event: {t:'#identity', op:1} + {seq, did, time, pad}. */
export function makeFrame(seq: number, padBytes = 0, did = `did:plc:user${seq % 7}`): BroadcastFrame {
  const time = Date.now()
  const header = encode({ t: '#identity', op: 1 })
  const body = encode({ seq, did, time: new Date(time).toISOString(), pad: 'x'.repeat(padBytes) })
  const frame = new Uint8Array(header.length + body.length)
  frame.set(header, 0)
  frame.set(body, header.length)
  return { seq, did, frame, time }
}

/** In-memory event log; `readDelayMs` simulates a database round trip. */
export class FakeStore implements EventLogReader {
  frames: BroadcastFrame[] = []
  pruned = 0
  hiddenDids = new Set<string>()
  reads = 0
  readDelayMs: number
  constructor(readDelayMs = 1) {
    this.readDelayMs = readDelayMs
  }
  append(f: BroadcastFrame): void {
    this.frames.push(f)
  }
  prune(throughSeq: number): void {
    this.frames = this.frames.filter((f) => f.seq > throughSeq)
    this.pruned = Math.max(this.pruned, throughSeq)
  }
  prunedThrough(): number {
    return this.pruned
  }
  async readRange(afterSeq: number, limit: number): Promise<BroadcastFrame[]> {
    this.reads++
    if (this.readDelayMs > 0) await new Promise((r) => setTimeout(r, this.readDelayMs))
    let lo = 0
    let hi = this.frames.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.frames[mid]!.seq > afterSeq) hi = mid
      else lo = mid + 1
    }
    const out: BroadcastFrame[] = []
    for (let i = lo; i < this.frames.length && out.length < limit; i++) {
      if (!this.hiddenDids.has(this.frames[i]!.did)) out.push(this.frames[i]!)
    }
    return out
  }
}

export interface Harness {
  b: Broadcaster
  store: FakeStore
  registry: Registry
  port: number
  url: (query?: string) => string
  /** Persist then broadcast the next n events. */
  publish: (n: number, padBytes?: number) => void
  seq: () => number
  close: () => Promise<void>
}

export async function startHarness(
  opts: Partial<BroadcasterOptions> & { storeDelayMs?: number; noStore?: boolean } = {},
): Promise<Harness> {
  const registry = new Registry()
  const store = new FakeStore(opts.storeDelayMs ?? 1)
  const b = new Broadcaster({ registry, store: opts.noStore ? undefined : store, ...opts })
  const server = http.createServer((req, res) => {
    if (new URL(req.url ?? '/', 'http://x').pathname === SUBSCRIBE_REPOS_PATH) b.handleRequest(req, res)
    else {
      res.statusCode = 404
      res.end()
    }
  })
  server.on('upgrade', (req, socket, head) => {
    if (new URL(req.url ?? '/', 'http://x').pathname === SUBSCRIBE_REPOS_PATH) b.handleUpgrade(req, socket, head)
    else socket.destroy()
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as AddressInfo).port
  let seq = opts.headSeq ?? 0
  return {
    b,
    store,
    registry,
    port,
    url: (query = '') => `ws://127.0.0.1:${port}${SUBSCRIBE_REPOS_PATH}${query}`,
    publish(n, padBytes = 0) {
      for (let i = 0; i < n; i++) {
        const f = makeFrame(++seq, padBytes)
        store.append(f)
        b.broadcast(f)
      }
    },
    seq: () => seq,
    async close() {
      await b.closeAll()
      server.closeAllConnections()
      await new Promise<void>((r) => server.close(() => r()))
    },
  }
}

export interface Received {
  header: { op: number; t?: string }
  body: Record<string, unknown>
  raw: Buffer
}

export interface Client {
  ws: WebSocket
  msgs: Received[]
  seqs: () => number[]
  opened: Promise<void>
  closed: Promise<{ code: number; reason: string }>
  waitFor: (pred: () => boolean, timeoutMs?: number, what?: string) => Promise<void>
}

export function connect(url: string): Client {
  const ws = new WebSocket(url)
  const msgs: Received[] = []
  ws.on('message', (data: Buffer) => {
    const [header, rest] = decodeFirst(data)
    msgs.push({ header, body: decode(rest), raw: data })
  })
  ws.on('error', () => {})
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)))
  })
  opened.catch(() => {})
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  )
  return {
    ws,
    msgs,
    seqs: () => msgs.filter((m) => m.header.op === 1 && m.header.t !== '#info').map((m) => m.body.seq as number),
    opened,
    closed,
    waitFor: (pred, timeoutMs = 5000, what = 'condition') => waitFor(pred, timeoutMs, what),
  }
}

export async function waitFor(pred: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const start = Date.now()
  while (!pred()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

/** HTTP status and JSON body of a refused upgrade. */
export function upgradeRefusal(url: string): Promise<{ status: number; body: unknown; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    ws.on('error', () => {})
    ws.once('open', () => {
      ws.terminate()
      reject(new Error('upgrade unexpectedly succeeded'))
    })
    ws.once('unexpected-response', (_req, res) => {
      let data = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (data += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(data), headers: res.headers }))
    })
  })
}

export function range(from: number, to: number): number[] {
  const out: number[] = []
  for (let i = from; i <= to; i++) out.push(i)
  return out
}

export async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = await registry.getSingleMetric(name)?.get()
  if (!m) return 0
  let sum = 0
  for (const v of m.values) {
    if (Object.entries(labels).every(([k, l]) => v.labels[k] === l)) sum += v.value
  }
  return sum
}
