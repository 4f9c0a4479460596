// A scripted upstream host on 127.0.0.1: com.atproto.sync.subscribeRepos over WebSocket plus
// com.atproto.server.describeServer over HTTP. It keeps an in-memory event log, honours
// `?cursor=` like the reference PDS (replays seq > cursor, then live; FutureCursor for a cursor
// beyond its head), and lets a test drop connections, send error/#info frames, oversized frames
// or garbage, answer describeServer with any status, and pose as a relay (Server header).

import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { encode } from '@atcute/cbor'
import { WebSocketServer, type WebSocket } from 'ws'

export interface FakeEvent {
  seq: number
  did: string
  frame: Uint8Array
}

export interface FakeConnection {
  ws: WebSocket
  /** the raw `cursor` query parameter, null when absent */
  cursor: string | null
  userAgent: string | undefined
  /** frames sent on this connection */
  sent: number
  closed: boolean
}

export interface FakeUpstreamOptions {
  /** `Server` header on every HTTP response and the WebSocket upgrade */
  serverHeader?: string
  /** HTTP status of describeServer (default 200) */
  describeStatus?: number
  /** `maxPayload` of the server side (irrelevant for sending; kept small) */
  port?: number
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}

/** `{op:1, t}` + body. */
export function eventFrame(t: string, body: Record<string, unknown>): Uint8Array {
  return concat(encode({ t, op: 1 }), encode(body))
}

/** An #identity-shaped event (what the subscriber needs: seq, did, time), optionally padded. */
export function identityFrame(seq: number, did: string, padBytes = 0, time = new Date().toISOString()): Uint8Array {
  const body: Record<string, unknown> = { did, seq, time }
  if (padBytes > 0) body.pad = 'x'.repeat(padBytes)
  return eventFrame('#identity', body)
}

export function errorFrame(error: string, message?: string): Uint8Array {
  return concat(encode({ op: -1 }), encode(message === undefined ? { error } : { error, message }))
}

export function infoFrame(name: string, message?: string): Uint8Array {
  return eventFrame('#info', message === undefined ? { name } : { name, message })
}

export class FakeUpstream {
  readonly server: http.Server
  readonly wss: WebSocketServer
  readonly events: FakeEvent[] = []
  readonly connections: FakeConnection[] = []
  opts: FakeUpstreamOptions
  port = 0
  describeCalls = 0
  /** called for each new subscription before the replay; may send/close itself and return false to skip the replay */
  onConnect: ((conn: FakeConnection) => boolean | void) | null = null
  /** when false, new events are only logged, not pushed to connected sockets */
  live = true

  private constructor(opts: FakeUpstreamOptions) {
    this.opts = opts
    this.server = http.createServer((req, res) => {
      if (this.opts.serverHeader) res.setHeader('server', this.opts.serverHeader)
      if (req.url?.startsWith('/xrpc/com.atproto.server.describeServer')) {
        this.describeCalls++
        const status = this.opts.describeStatus ?? 200
        res.writeHead(status, { 'content-type': 'application/json' })
        res.end(JSON.stringify(status === 200 ? { did: 'did:web:fake.test', availableUserDomains: [] } : { error: 'InternalServerError' }))
        return
      }
      res.writeHead(404, { 'content-type': 'application/json' })
      res.end('{"error":"NotFound"}')
    })
    this.wss = new WebSocketServer({ noServer: true })
    this.wss.on('headers', (headers) => {
      if (this.opts.serverHeader) headers.push(`Server: ${this.opts.serverHeader}`)
    })
    this.server.on('upgrade', (req, socket, head) => {
      const url = new URL(req.url ?? '/', 'http://x')
      if (url.pathname !== '/xrpc/com.atproto.sync.subscribeRepos') {
        socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n')
        return
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, url.searchParams.get('cursor'), req.headers['user-agent']))
    })
  }

  static async start(opts: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
    const f = new FakeUpstream(opts)
    await new Promise<void>((resolve) => f.server.listen(opts.port ?? 0, '127.0.0.1', resolve))
    f.port = (f.server.address() as AddressInfo).port
    return f
  }

  /** `localhost:PORT`, the form admin adds and insecure mode accept. */
  get hostname(): string {
    return `localhost:${this.port}`
  }

  get head(): number {
    return this.events.length ? this.events[this.events.length - 1]!.seq : 0
  }

  get openConnections(): FakeConnection[] {
    return this.connections.filter((c) => !c.closed)
  }

  /** Bytes queued on open sockets (ws-level plus the kernel-side view ws exposes). */
  bufferedAmount(): number {
    let n = 0
    for (const c of this.openConnections) n += c.ws.bufferedAmount
    return n
  }

  private accept(ws: WebSocket, cursor: string | null, userAgent: string | undefined): void {
    const conn: FakeConnection = { ws, cursor, userAgent, sent: 0, closed: false }
    this.connections.push(conn)
    ws.on('close', () => {
      conn.closed = true
    })
    ws.on('error', () => {})
    if (this.onConnect && this.onConnect(conn) === false) return
    if (cursor !== null && cursor !== '') {
      const c = Number(cursor)
      if (c > this.head) {
        this.sendError(conn, 'FutureCursor', 'Cursor in the future.')
        return
      }
      for (const e of this.events) if (e.seq > c) this.send(conn, e.frame)
    }
  }

  send(conn: FakeConnection, frame: Uint8Array): void {
    if (conn.closed) return
    conn.sent++
    conn.ws.send(frame, { binary: true })
  }

  /** Error frame then close 1008 with the error name, as the reference PDS does. */
  sendError(conn: FakeConnection, error: string, message?: string): void {
    this.send(conn, errorFrame(error, message))
    conn.ws.close(1008, error)
  }

  /** Send bytes to every open connection without logging them (garbage, #info, oversized...). */
  broadcastRaw(frame: Uint8Array, opts: { binary?: boolean } = {}): void {
    for (const c of this.openConnections) {
      c.sent++
      c.ws.send(frame, { binary: opts.binary ?? true })
    }
  }

  /** Append an event with an explicit seq (any order, for misbehaving-upstream tests) and push it live. */
  appendFrame(seq: number, did: string, frame: Uint8Array, opts: { log?: boolean } = {}): void {
    if (opts.log !== false) this.events.push({ seq, did, frame })
    if (this.live) for (const c of this.openConnections) this.send(c, frame)
  }

  /** Append `n` identity events with consecutive seqs; DIDs cycle over `dids`. */
  append(n: number, opts: { dids?: string[]; padBytes?: number; time?: string } = {}): number[] {
    const dids = opts.dids ?? ['did:plc:aaaaaaaaaaaaaaaaaaaaaaaa']
    const seqs: number[] = []
    for (let i = 0; i < n; i++) {
      const seq = this.head + 1
      const did = dids[(seq - 1) % dids.length]!
      this.appendFrame(seq, did, identityFrame(seq, did, opts.padBytes, opts.time))
      seqs.push(seq)
    }
    return seqs
  }

  /** Terminate every open subscription (the upstream "drops" us). */
  dropAll(): void {
    for (const c of this.openConnections) c.ws.terminate()
  }

  /** The seq reset of a PDS restored from scratch: forget the log. */
  resetLog(): void {
    this.events.length = 0
  }

  async close(): Promise<void> {
    for (const c of this.connections) c.ws.terminate()
    this.wss.close()
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}

/** Poll until `fn` returns true (tests only; keeps them free of fixed sleeps). */
export async function waitFor(fn: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}
