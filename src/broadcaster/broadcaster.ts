/**
 * Outbound firehose: `com.atproto.sync.subscribeRepos` consumers on a `ws` server in noServer
 * mode. The HTTP server (src/core) routes the upgrade here:
 *
 *   server.on('upgrade', (req, socket, head) => {
 *     if (pathOf(req) === SUBSCRIBE_REPOS_PATH) broadcaster.handleUpgrade(req, socket, head);
 *   });
 *   // and for a plain GET on the same path: broadcaster.handleRequest(req, res)
 *
 * Frames reach `broadcast()` already persisted, in strictly increasing seq order. Each is framed
 * once, kept in the ring and pushed to live consumers; catch-up and replay consumers pull from
 * the ring or the event log (see consumer.ts). `broadcast()` never waits on a consumer.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Registry } from 'prom-client'
import { WebSocketServer } from 'ws'
import type { WebSocket } from 'ws'
import { Consumer } from './consumer.ts'
import type { ConsumerConfig, ConsumerHost, ConsumerMode } from './consumer.ts'
import { decideCursor, FUTURE_CURSOR_MESSAGE, OUTDATED_CURSOR_MESSAGE, parseCursor } from './cursor.ts'
import { encodeErrorFrame, encodeInfoFrame, wsBinaryMessage } from './frames.ts'
import { BroadcasterStats, createBroadcasterMetrics } from './metrics.ts'
import type { BroadcasterMetrics, ConnectOutcome, KickReason, RejectReason } from './metrics.ts'
import { Ring } from './ring.ts'
import { noopLogger } from './types.ts'
import { SharedReplayReader } from './replay-cache.ts'
import type { BroadcastFrame, BroadcasterLogger, EventLogReader } from './types.ts'

export const SUBSCRIBE_REPOS_PATH = '/xrpc/com.atproto.sync.subscribeRepos'

const MiB = 1024 * 1024

export interface BroadcasterOptions {
  /** Metrics go here (never the global registry). */
  registry: Registry
  /** Event log for cursors older than the ring; without it the ring is the replay window. */
  store?: EventLogReader
  /** Newest seq already persisted at startup (0 for an empty log). */
  headSeq?: number
  ringMaxFrames?: number // default 100_000
  ringMaxBytes?: number // default 256 MiB
  /** Live pushes to a consumer stop above this socket backlog. Default 4 MiB. */
  softLimitBytes?: number
  /** Catch-up refills a socket up to this backlog. Default 1 MiB. */
  catchupFillBytes?: number
  /** ConsumerTooSlow threshold on a consumer's backlog. Default 32 MiB. */
  hardLimitBytes?: number
  /** ...sustained for this long while its lag grows. Default 30 s. */
  tooSlowMs?: number
  storePageSize?: number // default 500
  /** bytes of event-log pages kept for catch-up consumers reading the same range; default 32 MiB, 0 = off */
  replayCacheBytes?: number
  /** Ping consumers this often; terminate ones that neither answered nor read since. Default 30 s. */
  pingIntervalMs?: number
  /** Period of the slow/dead/lag check. Default 1 s. */
  checkIntervalMs?: number
  /** Wait for the peer's close frame this long before terminating. Default 5 s. */
  closeGraceMs?: number
  /** Max concurrent consumers per client IP; 0 = unlimited (default). */
  maxConnectionsPerIp?: number
  /** Client address for the per-IP limit; default the socket's remote address. */
  clientIp?: (req: IncomingMessage) => string
  /** Largest message accepted from a client (they are ignored anyway). Default 64 KiB. */
  maxClientPayload?: number
  logger?: BroadcasterLogger
}

export type RequestCheck =
  | { ok: true; cursor: number | undefined; ip: string }
  | { ok: false; status: number; error: string; message: string; headers?: Record<string, string>; reason: RejectReason | 'shutdown' }

export class Broadcaster implements ConsumerHost {
  readonly ring: Ring
  readonly store: EventLogReader | undefined
  readonly stats = new BroadcasterStats()
  readonly config: ConsumerConfig
  readonly log: BroadcasterLogger
  readonly metrics: BroadcasterMetrics

  #head: number
  #live = new Set<Consumer>()
  #catchup = new Set<Consumer>()
  #toUncork: Consumer[] = []
  #uncorkScheduled = false
  #wss: WebSocketServer
  #perIp = new Map<string, number>()
  #maxPerIp: number
  #clientIp: (req: IncomingMessage) => string
  #pingIntervalMs: number
  #timer: NodeJS.Timeout
  #shuttingDown = false
  #pendingUpgrades = new Set<Duplex>()

  #replayCache: SharedReplayReader | undefined

  constructor(opts: BroadcasterOptions) {
    const cacheBytes = opts.replayCacheBytes ?? 32 * MiB
    if (opts.store && cacheBytes > 0) this.#replayCache = new SharedReplayReader(opts.store, { maxBytes: cacheBytes })
    this.store = this.#replayCache ?? opts.store
    this.log = opts.logger ?? noopLogger
    this.#head = opts.headSeq ?? 0
    if (!(Number.isSafeInteger(this.#head) && this.#head >= 0)) throw new RangeError('headSeq must be a non-negative safe integer')
    this.ring = new Ring({
      maxFrames: opts.ringMaxFrames ?? 100_000,
      maxBytes: opts.ringMaxBytes ?? 256 * MiB,
      floorSeq: this.#head,
    })
    const soft = opts.softLimitBytes ?? 4 * MiB
    const hard = opts.hardLimitBytes ?? 32 * MiB
    this.config = {
      softLimitBytes: soft,
      catchupFillBytes: opts.catchupFillBytes ?? Math.min(MiB, soft),
      hardLimitBytes: Math.max(hard, soft),
      tooSlowMs: opts.tooSlowMs ?? 30_000,
      storePageSize: opts.storePageSize ?? 500,
      closeGraceMs: opts.closeGraceMs ?? 5_000,
    }
    this.#maxPerIp = opts.maxConnectionsPerIp ?? 0
    this.#clientIp = opts.clientIp ?? ((req) => req.socket.remoteAddress ?? 'unknown')
    this.#pingIntervalMs = opts.pingIntervalMs ?? 30_000
    this.#wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false, // shared pre-framed buffers require it off (and it costs 40-100x CPU)
      maxPayload: opts.maxClientPayload ?? 64 * 1024,
      clientTracking: false,
    })
    this.metrics = createBroadcasterMetrics(opts.registry, this.stats, {
      consumerCounts: () => ({ live: this.#live.size, catchup: this.#catchup.size }),
      socketBacklog: () => {
        let total = 0
        let max = 0
        for (const set of [this.#live, this.#catchup]) {
          for (const c of set) {
            const b = c.buffered
            total += b
            if (b > max) max = b
          }
        }
        return { total, max }
      },
      ringFrames: () => this.ring.length,
      ringBytes: () => this.ring.bytes,
      ringEvicted: () => this.ring.evictedCount,
      headSeq: () => this.#head,
      replayCache: () => this.#replayCache?.stats(),
    })
    this.#timer = setInterval(() => this.#check(), opts.checkIntervalMs ?? 1_000)
    this.#timer.unref()
  }

  headSeq(): number {
    return this.#head
  }

  get consumerCount(): number {
    return this.#live.size + this.#catchup.size
  }

  /** Connected consumers, oldest first (admin API). */
  consumers(): Array<{
    id: number
    ip: string
    userAgent: string
    framesSent: number
    connectedAt: number
    position: number
    mode: string
  }> {
    return [...this.#live, ...this.#catchup]
      .map((c) => ({
        id: c.id,
        ip: c.ip,
        userAgent: c.userAgent,
        framesSent: c.framesSent,
        connectedAt: c.connectedAt,
        position: c.position,
        mode: c.mode,
      }))
      .sort((a, b) => a.id - b.id)
  }

  consumerModes(): { live: number; catchup: number } {
    return { live: this.#live.size, catchup: this.#catchup.size }
  }

  /** Lag (head seq minus position) over connected consumers: max and sum. O(consumers). */
  lagSummary(): { consumers: number; max: number; total: number } {
    let max = 0
    let total = 0
    for (const set of [this.#live, this.#catchup]) {
      for (const c of set) {
        const lag = this.#head - c.position
        total += lag
        if (lag > max) max = lag
      }
    }
    return { consumers: this.consumerCount, max, total }
  }

  /**
   * Publishes one persisted frame. Synchronous and O(live consumers) buffer appends: socket
   * writes are corked and flushed together on setImmediate.
   */
  broadcast(f: BroadcastFrame): void {
    if (!(f.seq > this.#head) || !Number.isSafeInteger(f.seq)) {
      throw new RangeError(`broadcast seq ${f.seq} must be a safe integer above ${this.#head}`)
    }
    const wire = wsBinaryMessage(f.frame, f.headroom)
    this.ring.push({ seq: f.seq, did: f.did, time: f.time, size: wire.length, wire })
    this.#head = f.seq
    this.stats.broadcasts++
    for (const c of this.#live) c.pushLive(f.seq, wire)
  }

  broadcastMany(frames: Iterable<BroadcastFrame>): void {
    for (const f of frames) this.broadcast(f)
  }

  /** Takedown: replay from the ring skips `did`'s frames from now on. Returns frames hidden. */
  hideDid(did: string): number {
    this.#replayCache?.invalidate()
    return this.ring.hideDid(did)
  }

  /** Pre-upgrade checks (method, cursor syntax, shutdown, per-IP limit). Pure apart from reads. */
  checkRequest(req: IncomingMessage): RequestCheck {
    if (req.method !== 'GET') {
      return {
        ok: false,
        status: 405,
        error: 'MethodNotAllowed',
        message: 'subscribeRepos requires GET',
        headers: { Allow: 'GET' },
        reason: 'method',
      }
    }
    if (this.#shuttingDown) {
      return {
        ok: false,
        status: 503,
        error: 'ServiceUnavailable',
        message: 'Relay is shutting down',
        headers: { 'Retry-After': '5' },
        reason: 'shutdown',
      }
    }
    const url = new URL(req.url ?? '/', 'http://localhost')
    const parsed = parseCursor(url.searchParams.getAll('cursor'))
    if (!parsed.ok) return { ok: false, status: 400, error: parsed.error, message: parsed.message, reason: 'bad_cursor' }
    const ip = this.#clientIp(req)
    if (this.#maxPerIp > 0 && (this.#perIp.get(ip) ?? 0) >= this.#maxPerIp) {
      return {
        ok: false,
        status: 429,
        error: 'RateLimitExceeded',
        message: `Too many firehose connections from this address (max ${this.#maxPerIp})`,
        headers: { 'Retry-After': '10' },
        reason: 'ip_limit',
      }
    }
    return { ok: true, cursor: parsed.cursor, ip }
  }

  /** For a plain (non-upgrade) request on the subscribeRepos path: XRPC JSON error. */
  handleRequest(req: IncomingMessage, res: ServerResponse): void {
    const check = this.checkRequest(req)
    if (!check.ok) this.#countReject(check.reason)
    const [status, body, headers] = check.ok
      ? [
          426,
          { error: 'UpgradeRequired', message: 'subscribeRepos is a WebSocket endpoint' },
          { Upgrade: 'websocket', Connection: 'Upgrade' },
        ]
      : [check.status, { error: check.error, message: check.message }, check.headers ?? {}]
    const json = JSON.stringify(body)
    res.writeHead(status, { ...headers, 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(json) })
    res.end(json)
  }

  /** Entry point for the HTTP server's 'upgrade' event on the subscribeRepos path. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => {}) // a reset during the handshake must not crash the process
    const check = this.checkRequest(req)
    if (!check.ok) {
      this.#countReject(check.reason)
      writeHttpError(socket, check.status, { error: check.error, message: check.message }, check.headers)
      return
    }
    const ip = check.ip
    if (this.#maxPerIp > 0) {
      this.#perIp.set(ip, (this.#perIp.get(ip) ?? 0) + 1)
      socket.once('close', () => {
        const n = (this.#perIp.get(ip) ?? 1) - 1
        if (n <= 0) this.#perIp.delete(ip)
        else this.#perIp.set(ip, n)
      })
    }
    this.#pendingUpgrades.add(socket)
    socket.once('close', () => this.#pendingUpgrades.delete(socket))
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      this.#pendingUpgrades.delete(socket)
      this.#attach(ws, socket as Socket, ip, check.cursor, String(req.headers['user-agent'] ?? ''))
    })
  }

  #attach(ws: WebSocket, socket: Socket, ip: string, cursor: number | undefined, userAgent: string): void {
    if (this.#shuttingDown) {
      ws.close(1012, 'service restart')
      return
    }
    const d = decideCursor(cursor, {
      headSeq: this.#head,
      ringFloor: this.ring.floorSeq,
      prunedThrough: this.store?.prunedThrough() ?? 0,
      hasStore: this.store !== undefined,
    })
    if (d.action === 'future') {
      this.#countReject('future_cursor')
      ws.on('error', () => {})
      socket.write(wsBinaryMessage(encodeErrorFrame('FutureCursor', FUTURE_CURSOR_MESSAGE)))
      ws.close(1008, 'FutureCursor')
      const t = setTimeout(() => ws.terminate(), this.config.closeGraceMs)
      t.unref()
      ws.once('close', () => clearTimeout(t))
      return
    }
    let outcome: ConnectOutcome
    let c: Consumer
    if (d.action === 'live') {
      outcome = 'live'
      c = new Consumer(this, ws, socket, ip, this.#head, 'live')
      this.#live.add(c)
    } else {
      outcome = d.outdated ? 'outdated' : d.source === 'ring' ? 'replay_ring' : 'replay_store'
      if (d.outdated) socket.write(wsBinaryMessage(encodeInfoFrame('OutdatedCursor', OUTDATED_CURSOR_MESSAGE)))
      c = new Consumer(this, ws, socket, ip, d.afterSeq, 'catchup')
      this.#catchup.add(c)
    }
    c.userAgent = userAgent
    this.metrics.connects.inc({ outcome })
    this.log.debug({ consumer: c.id, ip, cursor, outcome }, 'consumer connected')
    c.pump()
  }

  // ConsumerHost

  modeChanged(c: Consumer, from: ConsumerMode | 'closed', to: ConsumerMode | 'closed'): void {
    if (from === 'live') this.#live.delete(c)
    else if (from === 'catchup') this.#catchup.delete(c)
    if (to === 'live') this.#live.add(c)
    else if (to === 'catchup') this.#catchup.add(c)
  }

  scheduleUncork(c: Consumer): void {
    this.#toUncork.push(c)
    if (!this.#uncorkScheduled) {
      this.#uncorkScheduled = true
      setImmediate(this.#flush)
    }
  }

  #flush = (): void => {
    this.#uncorkScheduled = false
    const list = this.#toUncork
    this.#toUncork = []
    for (const c of list) {
      c.corked = false
      c.socket.uncork()
    }
  }

  kicked(c: Consumer, reason: KickReason): void {
    this.metrics.kicks.inc({ reason })
    this.log.info({ consumer: c.id, ip: c.ip, reason, position: c.position, head: this.#head }, 'consumer kicked')
  }

  #countReject(reason: RejectReason | 'shutdown'): void {
    if (reason !== 'shutdown') this.metrics.rejects.inc({ reason })
  }

  #check(): void {
    const now = Date.now()
    for (const set of [this.#live, this.#catchup]) {
      const mode = set === this.#live ? 'live' : 'catchup'
      for (const c of set) {
        this.metrics.lag.observe({ mode }, Math.max(0, this.#head - c.position))
        const kick = c.check(now, this.#pingIntervalMs)
        if (kick === 'too_slow') c.kick('too_slow', 'ConsumerTooSlow', 'Stream consumer too slow')
        else if (kick === 'dead') c.terminate('dead')
      }
    }
  }

  /**
   * Shutdown: refuse new subscriptions and close every consumer with 1012 ("service restart"),
   * terminating those that don't complete the close handshake within the grace period.
   *
   * Not 1000: @atproto/ws-client (under @atproto/sync's Firehose) treats 1000 as a fatal,
   * non-reconnectable close, so a "clean" close at shutdown would stop those consumers for good.
   * 1012 (like 1001 or a dropped socket) makes them reconnect with backoff and resume from their
   * cursor against the restarted relay.
   */
  async closeAll(code = 1012, reason = 'service restart'): Promise<void> {
    this.#shuttingDown = true
    clearInterval(this.#timer)
    for (const s of this.#pendingUpgrades) s.destroy()
    const all = [...this.#live, ...this.#catchup]
    await Promise.all(
      all.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.ws.readyState === 3) return resolve()
            c.ws.once('close', () => resolve())
            this.metrics.kicks.inc({ reason: 'shutdown' })
            c.closeWith(code, reason)
          }),
      ),
    )
    this.#wss.close()
  }
}

/** Writes a complete XRPC JSON error response on a raw (not yet upgraded) socket and ends it. */
export function writeHttpError(
  socket: Duplex,
  status: number,
  body: { error: string; message?: string },
  headers: Record<string, string> = {},
): void {
  if (!socket.writable) {
    socket.destroy()
    return
  }
  const json = JSON.stringify(body)
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n`
  for (const [k, v] of Object.entries({
    ...headers,
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(json)),
    Connection: 'close',
  })) {
    head += `${k}: ${v}\r\n`
  }
  socket.end(head + '\r\n' + json)
  socket.once('finish', () => socket.destroy())
}
