/**
 * Encoders for the few frames the broadcaster emits itself, and WebSocket framing of shared
 * payloads.
 *
 * Event-stream frames are two concatenated DAG-CBOR objects (header, body). Map keys are sorted
 * length-first then bytewise (so `t` precedes `op`); @atcute/cbor's encoder does that.
 * Error frames: header {op:-1} with no `t`, body {error, message?}.
 */
import { encode } from '@atcute/cbor'

const ERROR_HEADER = encode({ op: -1 })
const INFO_HEADER = encode({ t: '#info', op: 1 })

export function encodeErrorFrame(error: string, message?: string): Buffer {
  const body = message === undefined ? encode({ error }) : encode({ error, message })
  return Buffer.concat([ERROR_HEADER, body])
}

export function encodeInfoFrame(name: string, message?: string): Buffer {
  const body = message === undefined ? encode({ name }) : encode({ name, message })
  return Buffer.concat([INFO_HEADER, body])
}

/** Largest header wsBinaryHeader writes (payloads of 64 KiB and more). */
export const WS_MAX_HEADER_BYTES = 10

/**
 * Header of an unmasked, unfragmented binary WebSocket message (RFC 6455 §5.2) carrying
 * `len` payload bytes, as a server sends it.
 */
export function wsBinaryHeader(len: number): Buffer {
  const h = Buffer.allocUnsafe(wsHeaderLength(len))
  writeWsBinaryHeader(h, len)
  return h
}

/** Writes that header at the start of `out` (which must have room for wsHeaderLength(len)). */
function writeWsBinaryHeader(out: Buffer, len: number): void {
  out[0] = 0x82
  if (len < 126) {
    out[1] = len
  } else if (len < 65536) {
    out[1] = 126
    out.writeUInt16BE(len, 2)
  } else {
    out[1] = 127
    out.writeUInt32BE(Math.floor(len / 0x100000000), 2)
    out.writeUInt32BE(len >>> 0, 6)
  }
}

/**
 * One Buffer holding the WebSocket framing followed by the payload: written as-is to every
 * consumer socket, so framing cost is paid once per event rather than once per consumer.
 */
export function wsBinaryMessage(payload: Uint8Array, headroom = 0): Buffer {
  const len = payload.byteLength
  const hl = wsHeaderLength(len)
  if (headroom >= hl && payload.byteOffset >= hl) {
    // the bytes in front belong to the payload's allocation (BroadcastFrame.headroom): frame in place
    const out = Buffer.from(payload.buffer, payload.byteOffset - hl, hl + len)
    writeWsBinaryHeader(out, len)
    return out
  }
  // not from the shared Buffer pool: a message queued to a slow consumer would pin a 64 KiB slab
  const out = Buffer.allocUnsafeSlow(hl + len)
  writeWsBinaryHeader(out, len)
  out.set(payload, hl)
  return out
}

/** Length of the WebSocket framing that `wsBinaryMessage` put in front of the payload. */
export function wsHeaderLength(payloadLen: number): number {
  return payloadLen < 126 ? 2 : payloadLen < 65536 ? 4 : 10
}
