/**
 * One firehose consumer connection.
 *
 * Delivery writes pre-framed WebSocket messages (see frames.ts `wsBinaryMessage`) straight to the
 * underlying net socket, corked around each batch: the framing is computed once per event and the
 * same Buffer is shared by every consumer. This is safe because permessage-deflate is off, so
 * `ws` itself never holds data back in its sender queue; the control frames `ws` writes (pong,
 * ping, close) go through the same socket in order. Nothing is written once the WebSocket leaves
 * the OPEN state, so no data frame can follow a close frame.
 *
 * Position: `position` is the highest seq this consumer is done with (sent, or skipped because
 * hidden). Every frame path checks `seq > position`, so the crossovers store → ring → live are
 * decided by seq and can neither skip nor repeat an event.
 *
 * Modes:
 * - live: the broadcaster pushes each new frame; if the socket backlog exceeds the soft limit the
 *   push is skipped and the consumer turns to catch-up.
 * - catchup: on every socket drain the consumer pulls from the ring (or from the event log when
 *   its position is older than the ring) until the socket backlog reaches the fill target, and
 *   rejoins live when it reaches the newest frame in the ring.
 */
import type { Socket } from 'node:net'
import type { WebSocket } from 'ws'
import type { Ring } from './ring.ts'
import type { BroadcasterLogger, EventLogReader } from './types.ts'
import type { BroadcasterStats, KickReason } from './metrics.ts'
import { encodeErrorFrame, wsBinaryHeader, wsBinaryMessage } from './frames.ts'

export type ConsumerMode = 'live' | 'catchup'

export interface ConsumerConfig {
  /** Live pushes stop (consumer turns to catch-up) while the socket backlog is above this. */
  softLimitBytes: number
  /** Catch-up writes stop once the socket backlog reaches this; they resume on drain. */
  catchupFillBytes: number
  /** Backlog (socket + unsent retained events) above which the too-slow clock runs. */
  hardLimitBytes: number
  /** How long the backlog must stay above the hard limit, while lag grows, to kick. */
  tooSlowMs: number
  /** Frames per event-log page. */
  storePageSize: number
  /** After sending an error frame and a close, terminate if the peer hasn't closed by then. */
  closeGraceMs: number
}

/** What a consumer needs from its broadcaster. */
export interface ConsumerHost {
  readonly ring: Ring
  readonly store: EventLogReader | undefined
  readonly stats: BroadcasterStats
  readonly config: ConsumerConfig
  readonly log: BroadcasterLogger
  headSeq(): number
  modeChanged(c: Consumer, from: ConsumerMode | 'closed', to: ConsumerMode | 'closed'): void
  scheduleUncork(c: Consumer): void
  kicked(c: Consumer, reason: KickReason): void
}

let nextId = 1

export class Consumer {
  readonly id = nextId++
  readonly ws: WebSocket
  readonly socket: Socket
  readonly ip: string
  readonly connectedAt = Date.now()
  /** client's User-Agent, for the admin consumer list */
  userAgent = ''
  /** frames written to this consumer (admin consumer list) */
  framesSent = 0
  position: number
  mode: ConsumerMode | 'closed'
  /** Corked by a live push in this tick; the broadcaster uncorks. */
  corked = false

  #host: ConsumerHost
  #reading = false
  #waitingForDrain = false
  #overSince: number | undefined
  #lagAtOver = 0
  #pingedAt = 0
  #awaitingPong = false
  #deliveredAtPing = 0
  #closeTimer: NodeJS.Timeout | undefined
  #softLimit: number

  constructor(host: ConsumerHost, ws: WebSocket, socket: Socket, ip: string, position: number, mode: ConsumerMode) {
    this.#host = host
    this.ws = ws
    this.socket = socket
    this.ip = ip
    this.position = position
    this.mode = mode
    this.#pingedAt = Date.now()
    // Same reason as the fill target in pump(): only above the high-water mark is 'drain' due.
    this.#softLimit = Math.max(host.config.softLimitBytes, socket.writableHighWaterMark)
    socket.on('drain', () => {
      this.#waitingForDrain = false
      this.pump()
    })
    ws.on('pong', () => {
      this.#awaitingPong = false
    })
    // Streams are one-way; "servers should ignore any frames received from the client".
    ws.on('message', () => {})
    ws.on('error', (err) => {
      host.log.debug({ err, consumer: this.id }, 'consumer socket error')
    })
    ws.on('close', () => this.#closed())
  }

  get open(): boolean {
    return this.mode !== 'closed' && this.ws.readyState === 1
  }

  /** Bytes queued in the socket's userland buffer (same as ws.bufferedAmount: no deflate). */
  get buffered(): number {
    return this.socket.writableLength
  }

  /** Live push of a ring entry. Called by the broadcaster only while mode === 'live'. */
  pushLive(seq: number, wire: Buffer): void {
    if (seq <= this.position) return
    const sock = this.socket
    if (sock.writableLength > this.#softLimit) {
      // Skip, don't queue: the frame stays in the ring and catch-up will fetch it on drain.
      this.#setMode('catchup')
      this.#host.stats.switchedToCatchup++
      this.#waitingForDrain = true
      return
    }
    if (this.ws.readyState !== 1) return
    if (!this.corked) {
      sock.cork()
      this.corked = true
      this.#host.scheduleUncork(this)
    }
    sock.write(wire)
    this.position = seq
    const st = this.#host.stats
    st.framesSent.live++
    this.framesSent++
    st.bytesSent.live += wire.length
  }

  /** Sends frames from the ring / event log while the socket has room (catch-up mode only). */
  pump(): void {
    if (this.mode !== 'catchup' || this.#reading || !this.open) return
    const host = this.#host
    const sock = this.socket
    // 'drain' only follows a write that pushed the buffer to the stream's high-water mark, so the
    // fill target must be at least that (Node 22+ defaults to 64 KiB) or we would wait forever.
    const fill = Math.max(host.config.catchupFillBytes, sock.writableHighWaterMark)
    const ring = host.ring
    const st = host.stats
    for (;;) {
      if (sock.writableLength >= fill) {
        this.#waitingForDrain = true
        return
      }
      if (this.position < ring.floorSeq) break
      const n = ring.length
      let i = ring.firstIndexAfter(this.position)
      sock.cork()
      try {
        while (i < n && sock.writableLength < fill) {
          const e = ring.at(i)!
          if (!ring.isHidden(i)) {
            sock.write(e.wire)
            st.framesSent.ring++
            this.framesSent++
            st.bytesSent.ring += e.wire.length
          }
          this.position = e.seq
          i++
        }
      } finally {
        sock.uncork()
      }
      if (i >= n) {
        // Reached the newest frame: from here on the broadcaster's pushes carry on, by seq.
        this.#setMode('live')
        st.rejoinedLive++
        this.#waitingForDrain = false
        return
      }
      // The kernel may have taken the whole batch synchronously (buffer empty again, no 'drain'
      // coming): keep going until bytes stay queued in userland.
      if (!this.open) return
    }
    const store = host.store
    if (!store) {
      // Without an event log, what fell out of the ring cannot be served without a gap.
      this.kick('too_slow', 'ConsumerTooSlow', 'Stream consumer too slow')
      return
    }
    this.#readPage(store)
  }

  #readPage(store: EventLogReader): void {
    const host = this.#host
    const after = this.position
    this.#reading = true
    store.readRange(after, host.config.storePageSize).then(
      (frames) => {
        this.#reading = false
        host.stats.storeReads++
        if (!this.open) return
        if (frames.length === 0) {
          // Nothing persisted after `after`: everything newer is in the ring (persist happens
          // before broadcast), so continue from the ring's coverage floor.
          if (host.ring.floorSeq > this.position) this.position = host.ring.floorSeq
        } else {
          this.#writeStoreFrames(frames)
        }
        this.pump()
      },
      (err: unknown) => {
        this.#reading = false
        host.stats.storeReadErrors++
        host.log.warn({ err, consumer: this.id, after }, 'event log read failed; closing consumer')
        // 1011 is an abnormal close: clients reconnect with their cursor and retry.
        this.#kickWithCode('store_error', 1011, 'InternalError')
      },
    )
  }

  #writeStoreFrames(frames: readonly { seq: number; frame: Uint8Array }[]): void {
    const sock = this.socket
    const st = this.#host.stats
    sock.cork()
    try {
      for (const f of frames) {
        if (f.seq <= this.position) continue
        const len = f.frame.byteLength
        const h = wsBinaryHeader(len)
        sock.write(h)
        sock.write(f.frame)
        this.position = f.seq
        st.framesSent.store++
        this.framesSent++
        st.bytesSent.store += h.length + len
      }
    } finally {
      sock.uncork()
    }
  }

  /** Backlog in bytes: socket buffer plus retained events not yet sent (estimated beyond the ring). */
  backlogBytes(): number {
    let b = this.socket.writableLength
    if (this.mode !== 'catchup') return b
    const ring = this.#host.ring
    if (this.position >= ring.floorSeq) return b + ring.bytesFrom(ring.firstIndexAfter(this.position))
    const avg = ring.length > 0 ? ring.bytes / ring.length : 1024
    return b + ring.bytes + (ring.floorSeq - this.position) * avg
  }

  /**
   * Periodic check (driven by the broadcaster). Returns the kick reason, if any.
   * Too slow = backlog above the hard limit for tooSlowMs, lag (in events) larger at the end of
   * that period than at its start, and the socket (not the event log) being what it waits on.
   */
  check(now: number, pingIntervalMs: number): KickReason | undefined {
    if (this.mode === 'closed') return undefined
    const cfg = this.#host.config
    const lag = this.#host.headSeq() - this.position
    if (this.backlogBytes() > cfg.hardLimitBytes) {
      if (this.#overSince === undefined) {
        this.#overSince = now
        this.#lagAtOver = lag
      } else if (now - this.#overSince >= cfg.tooSlowMs) {
        if (lag > this.#lagAtOver && this.#waitingForDrain) return 'too_slow'
        this.#overSince = now
        this.#lagAtOver = lag
      }
    } else {
      this.#overSince = undefined
    }
    if (now - this.#pingedAt >= pingIntervalMs) {
      const delivered = this.socket.bytesWritten - this.socket.writableLength
      // Dead: no pong to the previous ping and nothing drained from the socket since it.
      if (this.#awaitingPong && delivered === this.#deliveredAtPing) return 'dead'
      this.#pingedAt = now
      this.#awaitingPong = true
      if (this.ws.readyState === 1) this.ws.ping()
      // measured after the ping so that its own bytes don't count as progress
      this.#deliveredAtPing = this.socket.bytesWritten - this.socket.writableLength
    }
    return undefined
  }

  /** Sends an error frame (if named), closes with 1008 and terminates after the grace period. */
  kick(reason: KickReason, error?: string, message?: string): void {
    if (this.mode === 'closed') return
    if (error !== undefined && this.ws.readyState === 1) {
      this.socket.write(wsBinaryMessage(encodeErrorFrame(error, message)))
    }
    this.#kickWithCode(reason, 1008, error ?? '')
  }

  /** Closes with the given code (no error frame) and terminates after the grace period. */
  #kickWithCode(reason: KickReason, code: number, closeReason: string): void {
    if (this.mode === 'closed') return
    this.#host.kicked(this, reason)
    this.#setMode('closed')
    this.closeWith(code, closeReason)
  }

  closeWith(code: number, reason: string): void {
    if (this.mode !== 'closed') this.#setMode('closed')
    if (this.ws.readyState === 1) this.ws.close(code, reason)
    if (this.#closeTimer === undefined && this.ws.readyState !== 3) {
      this.#closeTimer = setTimeout(() => this.ws.terminate(), this.#host.config.closeGraceMs)
      this.#closeTimer.unref()
    }
  }

  terminate(reason: KickReason): void {
    if (this.mode !== 'closed') {
      this.#host.kicked(this, reason)
      this.#setMode('closed')
    }
    this.ws.terminate()
  }

  #setMode(to: ConsumerMode | 'closed'): void {
    const from = this.mode
    if (from === to) return
    this.mode = to
    this.#host.modeChanged(this, from, to)
  }

  #closed(): void {
    if (this.#closeTimer !== undefined) clearTimeout(this.#closeTimer)
    this.#setMode('closed')
  }
}
