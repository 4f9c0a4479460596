// One upstream subscription: a `ws` client to a host's com.atproto.sync.subscribeRepos, on the
// main thread. Per frame it only routes (header, seq, DID), applies the seq order check, the
// host's rate limit and the pipeline's room check, registers the seq with the cursor tracker and
// hands the frame to the sink. Whenever one of those says "wait", the socket is paused
// (ws.pause(): TCP backpressure to the PDS) and one promise/timer says when to go on. Nothing is
// dropped for being slow.
//
// Policies (documented in docs/design.md terms):
// - Cursor: reconnects resume from the last seq registered in this process (frames still in the
//   pipeline keep their tracker slots); a fresh process resumes from host.last_seq, which the
//   sequencer writes in the transaction that persisted everything at or below it.
// - Stale cursor: if the last event from the host is older than maxCursorAge, connect at the live
//   head instead (PDSs keep ~24 h; replaying more is either impossible or a replay storm).
// - Upstream seq reset: `FutureCursor` (our cursor is ahead of the PDS) → host idle, cursor
//   forgotten, retried from the live head after idleRetryMs. A first event below the cursor we
//   connected with (a PDS that reset its seq without telling) → the cursor is forgotten at once
//   (after in-flight frames settle) and the stream is taken from there.
// - Oversize frames (> maxFrameBytes, ≤ ws maxPayload): dropped and counted, the seq is marked
//   done so the cursor moves past it; a frame beyond maxPayload makes ws close with 1009 → backoff.
// - Invalid framing (fatal route failure, text frames): close and reconnect with backoff.

import WebSocket from 'ws'
import type { Logger } from '../core/log.ts'
import type { FrameMeta } from '../pool/types.ts'
import { ReconnectBackoff, type BackoffPolicy, type DisconnectKind } from './backoff.ts'
import { errorText, type HostRecord, type HostRegistry, type HostStatus } from './host-registry.ts'
import type { CursorRegistry, IngestSink } from './ingest.ts'
import type { HostStatsSource, ReconnectCause, SubscriberMetrics } from './metrics.ts'
import { HostRateLimiter, type RateLimits } from './rate-limit.ts'
import { routeFrame, type RoutedEvent } from './route.ts'
import type { SafeDialer } from './ssrf.ts'

export interface SubscriberSettings {
  maxFrameBytes: number
  pingIntervalMs: number
  maxCursorAgeMs: number
  idleRetryMs: number
  backoff: Partial<BackoffPolicy>
  /** how long after a pause a ConsumerTooSlow kick is still blamed on us; default 15 s */
  kickGraceMs?: number
}

export interface SubscriberDeps {
  sink: IngestSink
  cursors: CursorRegistry
  hosts: HostRegistry
  dialer: SafeDialer
  metrics: SubscriberMetrics
  log: Logger
  settings: SubscriberSettings
  now: () => number
  random: () => number
  /** called on status changes the manager should know about (metrics are read live anyway) */
  onStatus?: (sub: HostSubscriber, status: HostStatus) => void
  /** every submit promise, so the component can wait for them at stop */
  trackSubmit: (p: Promise<unknown>) => void
}

/** What the step function answers for the frame at the head of the queue. */
type Step =
  | { kind: 'done' }
  /** the connection is being closed; stop processing */
  | { kind: 'stop' }
  | { kind: 'wait'; reason: 'rate' | 'room' | 'reset' | 'tracker'; promise: Promise<void>; tier?: string; startedAt: number }

const DONE: Step = { kind: 'done' }
const STOP: Step = { kind: 'stop' }

const RELAY_SERVER_TOKEN = 'atproto-relay'
const MAX_RATE_WAIT_MS = 60_000

export class HostSubscriber implements HostStatsSource {
  host: HostRecord
  private readonly d: SubscriberDeps
  private readonly log: Logger
  readonly backoff: ReconnectBackoff
  private readonly limiter: HostRateLimiter

  private ws: WebSocket | null = null
  /** connection generation: callbacks from an older socket are ignored */
  private gen = 0
  private opened = false
  private reconnectTimer: NodeJS.Timeout | null = null
  /** disconnected on purpose (admin, ban, shutdown): no redial */
  private stopped = false
  private stopWaiters: Array<() => void> = []

  // per-connection state
  private openedWithCursor: number | null = null
  private firstEvent = true
  private closeCause: ReconnectCause | 'relay' | null = null
  private closeError: string | null = null
  private lastActivity = 0

  // frame processing
  private queue: Buffer[] = []
  private queueBytes = 0
  private head: { route: RoutedEvent; rateTaken: boolean } | null = null
  private waiting: Step | null = null
  private waitTimer: NodeJS.Timeout | null = null
  private pausedAt: number | null = null
  private resumedAt = 0

  // stats
  events = 0
  lastEventAt: number | null = null
  lastEventTime: string | null = null

  constructor(host: HostRecord, limits: RateLimits, deps: SubscriberDeps) {
    this.host = host
    this.d = deps
    this.log = deps.log.child({ host: host.hostname })
    this.backoff = new ReconnectBackoff(deps.settings.backoff, deps.random)
    this.limiter = new HostRateLimiter(limits, { now: deps.now })
    this.lastEventAt = host.lastEventAt?.getTime() ?? null
  }

  get hostname(): string {
    return this.host.hostname
  }

  get status(): HostStatus {
    return this.host.status
  }

  get connected(): boolean {
    return this.ws !== null && this.opened && this.ws.readyState === WebSocket.OPEN
  }

  get paused(): boolean {
    return this.waiting !== null
  }

  get bufferedBytes(): number {
    return this.queueBytes
  }

  /** dialling or connected */
  get active(): boolean {
    return this.ws !== null
  }

  setLimits(limits: RateLimits): void {
    this.limiter.setLimits(limits)
  }

  rateLimits(): RateLimits {
    return this.limiter.limits()
  }

  /** Schedule the first dial (startup stagger) unless already dialling. */
  start(delayMs: number): void {
    this.stopped = false
    if (this.ws || this.reconnectTimer) return
    this.schedule(delayMs)
  }

  /** requestCrawl / admin connect: forget failures and dial now unless already connected. */
  revive(): void {
    this.stopped = false
    this.backoff.reset()
    if (this.ws) return
    this.d.metrics.reconnects.inc({ cause: 'revived' })
    this.schedule(0)
  }

  /**
   * Stop reading and close (1000). Resolves when the socket has closed. Frames still queued are
   * abandoned: they were never registered, so the cursor stays below them and they are fetched
   * again on the next connection.
   */
  disconnect(): Promise<void> {
    this.stopped = true
    this.clearReconnect()
    const ws = this.ws
    if (!ws) return Promise.resolve()
    return new Promise<void>((resolve) => {
      this.stopWaiters.push(resolve)
      this.closeCause ??= 'dropped'
      this.abandonQueue()
      if (ws.readyState === WebSocket.CONNECTING) {
        ws.terminate()
        return
      }
      // A paused socket would never read the peer's close reply.
      ws.resume()
      ws.close(1000, 'relay closing')
      const t = setTimeout(() => ws.terminate(), 2_000)
      t.unref()
    })
  }

  /** Liveness tick from the manager (one shared interval for all hosts). */
  tick(now: number): void {
    const ws = this.ws
    if (!ws || !this.opened || ws.readyState !== WebSocket.OPEN) return
    // While we pause the socket nothing is read, pongs included: don't blame the host.
    if (this.waiting !== null) {
      this.lastActivity = now
      return
    }
    if (now - this.lastActivity > 2 * this.d.settings.pingIntervalMs) {
      this.endConnection('ping_timeout', 'no pong or frame from upstream within the liveness timeout')
      return
    }
    try {
      ws.ping()
    } catch {
      // closed concurrently; the close handler takes over
    }
  }

  // ---- connection lifecycle -------------------------------------------------------------------

  private schedule(delayMs: number): void {
    this.clearReconnect()
    this.reconnectTimer = setTimeout(
      () => {
        this.reconnectTimer = null
        void this.dial()
      },
      Math.max(0, delayMs),
    )
    this.reconnectTimer.unref?.()
  }

  private clearReconnect(): void {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer)
    this.reconnectTimer = null
  }

  /** Cursor for the next connection, applying the stale-cursor policy. */
  private async prepareCursor(): Promise<number | null> {
    const id = this.host.id
    const cursors = this.d.cursors
    if (!cursors.has(id)) cursors.open(id, this.host.lastSeq >= 0 ? this.host.lastSeq : null, this.host.doneAbove)
    const cursor = cursors.lastSeq(id)
    if (cursor === null) return null
    const lastTime = this.lastEventAt ?? this.host.lastEventAt?.getTime() ?? this.host.updatedAt.getTime()
    const age = this.d.now() - lastTime
    if (age <= this.d.settings.maxCursorAgeMs) return cursor
    this.log.warn({ cursor, ageHours: Math.round(age / 360_000) / 10 }, 'host cursor is stale; resubscribing at the live head')
    await this.resetCursor('stale')
    return null
  }

  private async resetCursor(reason: 'stale' | 'future_cursor' | 'seq_went_backwards', status?: HostStatus): Promise<void> {
    const id = this.host.id
    await this.d.cursors.whenIdle(id)
    this.d.cursors.reset(id, null)
    this.host.lastSeq = -1
    this.host.doneAbove = []
    this.d.metrics.cursorResets.inc({ reason })
    try {
      await this.d.hosts.resetCursor(id, status)
    } catch (err) {
      this.log.warn({ err: errorText(err) }, 'could not persist the cursor reset')
    }
  }

  private async dial(): Promise<void> {
    if (this.stopped || this.ws) return
    const gen = ++this.gen
    let cursor: number | null
    try {
      cursor = await this.prepareCursor()
    } catch (err) {
      this.log.error({ err }, 'preparing the cursor failed')
      cursor = null
    }
    if (this.stopped || gen !== this.gen) return
    const scheme = this.host.noSsl ? 'ws' : 'wss'
    const url = `${scheme}://${this.host.hostname}/xrpc/com.atproto.sync.subscribeRepos${cursor !== null ? `?cursor=${cursor}` : ''}`
    const permission = { adminLocalhost: this.host.adminAdded && this.host.hostname.startsWith('localhost:') }
    this.openedWithCursor = cursor
    this.firstEvent = true
    this.opened = false
    this.closeCause = null
    this.closeError = null
    let ws: WebSocket
    try {
      ws = new WebSocket(url, this.d.dialer.wsOptions(url, permission))
    } catch (err) {
      // e.g. a port the SSRF policy refuses, rejected synchronously
      this.closeError = errorText(err)
      this.afterClose(gen, 'dial_failed', 'dial-failed')
      return
    }
    this.ws = ws
    ws.on('upgrade', (res) => {
      const server = String(res.headers.server ?? '')
      if (server.toLowerCase().includes(RELAY_SERVER_TOKEN)) {
        this.closeCause = 'relay'
        this.closeError = `upstream identifies itself as a relay (Server: ${server.slice(0, 200)})`
        ws.terminate()
      }
    })
    ws.on('open', () => {
      if (gen !== this.gen) return
      this.opened = true
      const now = this.d.now()
      this.lastActivity = now
      this.backoff.onConnected(now)
      this.log.info({ cursor }, 'subscribed to upstream')
      if (this.host.status !== 'active' || this.host.failureCount > 0) {
        this.setStatus('active')
        this.host.failureCount = 0
        this.d.hosts.recordConnected(this.host.id).catch((err) => this.log.warn({ err: errorText(err) }, 'could not record the connection'))
      }
    })
    ws.on('pong', () => {
      this.lastActivity = this.d.now()
    })
    ws.on('message', (data: Buffer, isBinary: boolean) => this.onMessage(gen, data, isBinary))
    ws.on('error', (err: Error & { code?: string }) => {
      if (gen !== this.gen) return
      this.closeError ??= errorText(err)
      if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') this.closeCause ??= 'frame_too_large'
    })
    ws.on('close', (code: number) => {
      if (gen !== this.gen) return
      let cause: ReconnectCause | 'relay' =
        this.closeCause ?? (!this.opened ? 'dial_failed' : code === 1009 ? 'frame_too_large' : 'dropped')
      // A host that hangs up while we hold its socket paused is most likely kicking a slow
      // consumer whose error frame we never read: our fault, not the host's.
      if (cause === 'dropped' && this.recentlyPaused()) cause = 'consumer_too_slow'
      if (cause === 'frame_too_large') this.closeError ??= 'upstream frame exceeded the hard size cap'
      if (this.opened && !this.closeError) this.closeError = `connection closed by upstream (code ${code})`
      const kind: DisconnectKind = cause === 'consumer_too_slow' ? 'kicked-while-paused' : this.opened ? 'dropped' : 'dial-failed'
      this.afterClose(gen, cause, kind)
    })
  }

  private afterClose(gen: number, cause: ReconnectCause | 'relay', kind: DisconnectKind): void {
    this.ws = null
    this.opened = false
    this.abandonQueue()
    if (this.stopped) {
      for (const w of this.stopWaiters.splice(0)) w()
      return
    }
    const error = this.closeError ?? cause
    if (cause === 'relay') {
      this.log.warn({ error }, 'upstream is a relay; host banned')
      this.setStatus('banned')
      this.stopped = true
      this.d.hosts.setStatus(this.host.id, 'banned').catch(() => {})
      this.d.hosts.recordError(this.host.id, error).catch(() => {})
      return
    }
    this.d.metrics.reconnects.inc({ cause })
    if (cause === 'future_cursor') {
      this.log.warn(
        { cursor: this.openedWithCursor },
        'upstream says our cursor is in the future (its seq went backwards); host idle, will resubscribe at the live head',
      )
      this.setStatus('idle')
      const delay = this.d.settings.idleRetryMs
      void this.resetCursor('future_cursor', 'idle').then(() => {
        if (!this.stopped && gen === this.gen && !this.ws) this.schedule(delay)
      })
      this.d.hosts.recordError(this.host.id, error).catch(() => {})
      return
    }
    const decision = this.backoff.onDisconnect(kind, this.d.now())
    const level = kind === 'kicked-while-paused' ? 'info' : decision.failures > 3 ? 'warn' : 'info'
    this.log[level]({ cause, error, failures: decision.failures, retryInMs: decision.delayMs }, 'upstream connection ended')
    if (kind !== 'kicked-while-paused') {
      const offline = decision.action === 'offline'
      if (offline && this.host.status !== 'offline') this.setStatus('offline')
      this.host.failureCount = decision.failures
      this.d.hosts
        .recordFailure(this.host.id, decision.failures, error, offline ? 'offline' : undefined)
        .catch((err) => this.log.warn({ err: errorText(err) }, 'could not record the failure'))
    }
    this.schedule(decision.delayMs)
  }

  private setStatus(status: HostStatus): void {
    if (this.host.status === status) return
    this.host.status = status
    this.d.onStatus?.(this, status)
  }

  /** Close the current connection because of something we saw; the close handler decides what next. */
  private endConnection(cause: ReconnectCause, error: string): void {
    const ws = this.ws
    if (!ws) return
    this.closeCause ??= cause
    this.closeError ??= error
    this.abandonQueue()
    ws.terminate()
  }

  private abandonQueue(): void {
    this.queue = []
    this.queueBytes = 0
    this.head = null
    if (this.waitTimer) clearTimeout(this.waitTimer)
    this.waitTimer = null
    if (this.waiting) this.endWait()
  }

  // ---- frames ---------------------------------------------------------------------------------

  private onMessage(gen: number, data: Buffer, isBinary: boolean): void {
    if (gen !== this.gen || this.closeCause !== null || this.stopped) return
    this.lastActivity = this.d.now()
    if (!isBinary) {
      this.d.metrics.drops.inc({ reason: 'text_frame' })
      this.endConnection('framing', 'upstream sent a text WebSocket message (invalid framing)')
      return
    }
    const frame = ownedCopy(data)
    this.queue.push(frame)
    this.queueBytes += frame.length
    if (this.waiting === null) this.pump(gen)
  }

  private pump(gen: number): void {
    while (this.queue.length > 0 && this.waiting === null && gen === this.gen && this.closeCause === null) {
      const frame = this.queue[0]!
      const step = this.step(frame)
      if (step.kind === 'done') {
        this.queue.shift()
        this.queueBytes -= frame.length
        this.head = null
        continue
      }
      if (step.kind === 'stop') return
      this.beginWait(gen, step)
      return
    }
  }

  private beginWait(gen: number, step: Step & { kind: 'wait' }): void {
    this.waiting = step
    this.pausedAt = this.d.now()
    this.ws?.pause()
    step.promise.then(
      () => {
        if (this.waiting !== step) return
        this.endWait()
        if (gen !== this.gen || this.closeCause !== null || this.stopped) return
        this.ws?.resume()
        this.lastActivity = this.d.now()
        this.pump(gen)
      },
      (err) => {
        if (this.waiting !== step) return
        this.endWait()
        this.log.error({ err }, 'waiting for the pipeline failed; reconnecting')
        if (gen === this.gen) this.endConnection('dropped', `pipeline wait failed: ${errorText(err)}`)
      },
    )
  }

  private endWait(): void {
    const w = this.waiting
    this.waiting = null
    const now = this.d.now()
    this.resumedAt = now
    if (w && w.kind === 'wait') {
      const secs = (now - w.startedAt) / 1000
      if (w.reason === 'room') this.d.metrics.backpressureWaitSeconds.inc(secs)
      else if (w.reason === 'rate' && w.tier) this.d.metrics.rateLimitWaitSeconds.inc({ tier: w.tier }, secs)
    }
    this.pausedAt = null
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.waitTimer = setTimeout(() => {
        this.waitTimer = null
        resolve()
      }, ms)
    })
  }

  /** Were we pausing the socket now or very recently (so a ConsumerTooSlow kick is our fault)? */
  private recentlyPaused(): boolean {
    if (this.pausedAt !== null) return true
    return this.d.now() - this.resumedAt <= (this.d.settings.kickGraceMs ?? 15_000)
  }

  private step(frame: Buffer): Step {
    const d = this.d
    const id = this.host.id
    if (this.head === null) {
      const r = routeFrame(frame)
      switch (r.kind) {
        case 'invalid':
          if (r.fatal) {
            d.metrics.frames.inc({ type: 'invalid' })
            this.log.warn({ reason: r.reason, message: r.message }, 'invalid framing from upstream; dropping the connection')
            this.endConnection('framing', r.message)
            return STOP
          }
          d.metrics.drops.inc({ reason: 'undecodable' })
          return DONE
        case 'error':
          d.metrics.frames.inc({ type: 'error' })
          return this.onErrorFrame(r.error, r.message)
        case 'info':
          d.metrics.frames.inc({ type: 'info' })
          d.metrics.infos.inc({ name: r.name.slice(0, 64) })
          if (r.name === 'OutdatedCursor')
            this.log.warn(
              { message: r.message, cursor: this.openedWithCursor },
              'upstream: cursor older than its retention; some events were missed',
            )
          else this.log.info({ name: r.name, message: r.message }, 'upstream #info')
          return DONE
        case 'unknown':
          d.metrics.frames.inc({ type: 'unknown' })
          return DONE
      }
      d.metrics.frames.inc({ type: r.t.slice(1) })
      if (this.firstEvent) {
        this.firstEvent = false
        if (this.openedWithCursor !== null && r.seq < this.openedWithCursor) {
          // The PDS answered our cursor with older seqs: it reset its sequence.
          this.log.warn(
            { cursor: this.openedWithCursor, seq: r.seq },
            'upstream seq went backwards; forgetting the cursor and taking its stream from here',
          )
          this.openedWithCursor = null
          this.firstEvent = true
          return { kind: 'wait', reason: 'reset', promise: this.resetCursor('seq_went_backwards'), startedAt: d.now() }
        }
      }
      const last = d.cursors.lastSeq(id)
      if (last !== null && r.seq <= last) {
        d.metrics.drops.inc({ reason: r.seq === last ? 'duplicate_seq' : 'decreasing_seq' })
        return DONE
      }
      this.events++
      this.backoff.onEvent()
      this.lastEventAt = d.now()
      this.lastEventTime = r.time
      if (frame.length > d.settings.maxFrameBytes) {
        // Moving the cursor past it is the point: otherwise every reconnect fetches it again.
        d.metrics.drops.inc({ reason: 'oversize' })
        if (d.cursors.register(id, r.seq) === 'ok') d.cursors.markDone(id, r.seq)
        this.log.warn({ seq: r.seq, bytes: frame.length }, 'upstream frame over the size limit dropped')
        d.hosts
          .recordError(id, `frame seq ${r.seq} of ${frame.length} bytes exceeds the ${d.settings.maxFrameBytes}-byte limit; dropped`)
          .catch(() => {})
        return DONE
      }
      this.head = { route: r, rateTaken: false }
    }
    const h = this.head
    const r = h.route
    if (!h.rateTaken) {
      const t = this.limiter.tryTake()
      if (!t.ok) {
        const wait = Math.min(t.waitMs, MAX_RATE_WAIT_MS)
        d.metrics.rateLimitWaits.inc({ tier: t.tier })
        return { kind: 'wait', reason: 'rate', tier: t.tier, promise: this.sleep(wait), startedAt: d.now() }
      }
      h.rateTaken = true
    }
    if (!d.sink.hasRoom(r.did, frame.length)) {
      d.metrics.backpressureWaits.inc()
      return { kind: 'wait', reason: 'room', promise: d.sink.waitForRoom(r.did, frame.length), startedAt: d.now() }
    }
    const reg = d.cursors.register(id, r.seq)
    if (reg === 'full') {
      d.metrics.drops.inc({ reason: 'cursor_tracker_full' })
      // Backstop only (the pipeline's byte budgets bound in-flight frames long before).
      return { kind: 'wait', reason: 'tracker', promise: this.sleep(100), startedAt: d.now() }
    }
    if (reg === 'already_persisted') {
      // Persisted before a crash, above the cursor saved then: delivering it again would duplicate it.
      d.metrics.drops.inc({ reason: 'already_persisted' })
      return DONE
    }
    if (reg !== 'ok') {
      d.metrics.drops.inc({ reason: reg === 'duplicate' ? 'duplicate_seq' : 'decreasing_seq' })
      return DONE
    }
    const meta: FrameMeta = { hostId: id, hostname: this.host.hostname, upstreamSeq: r.seq, receivedAt: this.lastEventAt ?? d.now() }
    const seq = r.seq
    const p = d.sink.submit(r.did, frame, meta).then(
      () => {
        d.cursors.markDone(id, seq)
      },
      (err) => {
        d.metrics.submitFailures.inc()
        this.log.error({ err: errorText(err), seq }, 'handing a frame to the pipeline failed; it will be fetched again after a restart')
      },
    )
    d.trackSubmit(p)
    return DONE
  }

  private onErrorFrame(error: string, message: string | null): Step {
    const text = `upstream error ${error}${message ? `: ${message}` : ''}`
    if (error === 'FutureCursor') this.endConnection('future_cursor', text)
    else if (error === 'ConsumerTooSlow' && this.recentlyPaused()) this.endConnection('consumer_too_slow', text)
    else this.endConnection('error_frame', text)
    return STOP
  }
}

/**
 * `ws` hands out views into its receive buffers. A frame waiting for a worker would pin the whole
 * chunk it came from (often 64 KiB for a 1 KiB frame), so the byte budgets that bound memory would
 * undercount by an order of magnitude. Frames that don't own their memory are copied into an
 * allocation of their own (not Buffer's shared pool, which is the same problem at 8 KiB).
 */
export function ownedCopy(data: Buffer): Buffer {
  if (data.byteOffset === 0 && data.buffer.byteLength === data.byteLength) return data
  const owned = Buffer.allocUnsafeSlow(data.byteLength)
  data.copy(owned)
  return owned
}
