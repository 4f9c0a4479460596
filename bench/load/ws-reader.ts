// A minimal WebSocket client for the load harness's consumers: a raw TCP socket, our own
// handshake, and a streaming frame parser that walks the server's message headers without
// copying payloads it does not need. With the `ws` package the consumers process spent ~3.4 µs
// per message at saturation (receiver state machine, a Buffer and an event per message); this
// reader ~1.9 µs, most of it the kernel's copy. Every message is still received and framed, so
// the relay's work is unchanged; only the harness, which shares the relay's 2 cores, is cheaper.
import { createHash, randomBytes } from 'node:crypto'
import net from 'node:net'

export interface WsReaderEvents {
  /** A complete binary message. `payload` is only materialised when `wantPayload()` said so. */
  message(payloadLength: number, payload: Buffer | undefined): void
  /** Decides, at each message's header, whether its payload must be assembled. */
  wantPayload(): boolean
  open(): void
  close(): void
}

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

/**
 * Incremental parser of server → client frames (unmasked, RFC 6455 §5.2). Feed it chunks as they
 * arrive; it calls back per complete message. Control frames are returned to the caller through
 * `onControl` so the socket shell can answer pings and closes.
 */
export class WsFrameParser {
  #header: Buffer | undefined // the start of a header split across chunks (under 10 bytes)
  #remaining = 0 // payload bytes still to come for the current frame
  #opcode = 0
  #length = 0
  #parts: Buffer[] | undefined
  #events: Pick<WsReaderEvents, 'message' | 'wantPayload'>
  #onControl: (opcode: number, payload: Buffer) => void

  constructor(events: Pick<WsReaderEvents, 'message' | 'wantPayload'>, onControl: (opcode: number, payload: Buffer) => void) {
    this.#events = events
    this.#onControl = onControl
  }

  push(chunk: Buffer): void {
    let buf = chunk
    if (this.#header) {
      buf = Buffer.concat([this.#header, chunk])
      this.#header = undefined
    }
    let off = 0
    while (off < buf.length) {
      if (this.#remaining > 0) {
        const take = Math.min(this.#remaining, buf.length - off)
        this.#parts?.push(buf.subarray(off, off + take))
        this.#remaining -= take
        off += take
        if (this.#remaining === 0) this.#finish()
        continue
      }
      const avail = buf.length - off
      if (avail < 2) {
        this.#header = Buffer.from(buf.subarray(off))
        return
      }
      const b0 = buf[off]!
      const b1 = buf[off + 1]!
      if (b1 & 0x80) throw new Error('server frame is masked')
      if ((b0 & 0x80) === 0) throw new Error('fragmented server message (the relay never fragments)')
      const len7 = b1 & 0x7f
      const hl = len7 === 126 ? 4 : len7 === 127 ? 10 : 2
      if (avail < hl) {
        this.#header = Buffer.from(buf.subarray(off))
        return
      }
      const len =
        len7 === 126 ? buf.readUInt16BE(off + 2) : len7 === 127 ? buf.readUInt32BE(off + 2) * 2 ** 32 + buf.readUInt32BE(off + 6) : len7
      off += hl
      this.#opcode = b0 & 0x0f
      this.#length = len
      this.#remaining = len
      // control frames are always assembled: a ping's payload goes back in the pong
      this.#parts = this.#opcode >= 8 || (this.#opcode === 2 && this.#events.wantPayload()) ? [] : undefined
      if (len === 0) this.#finish()
    }
  }

  #finish(): void {
    const parts = this.#parts
    this.#parts = undefined
    const payload = parts === undefined ? undefined : parts.length === 1 ? parts[0]! : Buffer.concat(parts)
    if (this.#opcode === 2) this.#events.message(this.#length, payload)
    else if (this.#opcode >= 8) this.#onControl(this.#opcode, payload ?? Buffer.alloc(0))
    // text frames (opcode 1) are not part of subscribeRepos; ignored
  }
}

/** Client frames must be masked (RFC 6455 §5.3). Only small control frames are ever sent. */
function maskedControlFrame(opcode: number, payload: Buffer): Buffer {
  const mask = randomBytes(4)
  const out = Buffer.allocUnsafe(6 + payload.length)
  out[0] = 0x80 | opcode
  out[1] = 0x80 | payload.length
  mask.copy(out, 2)
  for (let i = 0; i < payload.length; i++) out[6 + i] = payload[i]! ^ mask[i & 3]!
  return out
}

/** Opens `url` (ws://host:port/path) and feeds every message to `events`. Returns the socket. */
export function connectWsReader(url: string, events: WsReaderEvents): net.Socket {
  const u = new URL(url)
  const key = randomBytes(16).toString('base64')
  const expectAccept = createHash('sha1')
    .update(key + WS_GUID)
    .digest('base64')
  const socket = net.connect(Number(u.port), u.hostname)
  socket.setNoDelay(true)
  let closed = false
  const close = () => {
    if (closed) return
    closed = true
    events.close()
  }
  const parser = new WsFrameParser(events, (opcode, payload) => {
    if (opcode === 9) socket.write(maskedControlFrame(10, payload))
    else if (opcode === 8) {
      socket.end(maskedControlFrame(8, payload.subarray(0, 2)))
    }
  })
  // a protocol error closes this connection only (the consumers process reconnects it)
  const feed = (d: Buffer) => {
    try {
      parser.push(d)
    } catch {
      socket.destroy()
    }
  }
  let head: Buffer | undefined = Buffer.alloc(0)
  socket.on('connect', () => {
    socket.write(
      `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    )
  })
  socket.on('data', (d: Buffer) => {
    if (head === undefined) return feed(d)
    head = Buffer.concat([head, d])
    const end = head.indexOf('\r\n\r\n')
    if (end < 0) return
    const lines = head.subarray(0, end).toString('latin1').split('\r\n')
    const accept = lines
      .find((l) => l.toLowerCase().startsWith('sec-websocket-accept:'))
      ?.slice(21)
      .trim()
    if (!lines[0]!.startsWith('HTTP/1.1 101') || accept !== expectAccept) {
      socket.destroy()
      return
    }
    const rest = head.subarray(end + 4)
    head = undefined
    events.open()
    if (rest.length > 0) feed(rest)
  })
  socket.on('close', close)
  socket.on('error', () => {})
  return socket
}
