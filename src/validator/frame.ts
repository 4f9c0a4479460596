// Firehose frame decoding: two concatenated DAG-CBOR objects, header {op, t} then body.
// Lenient about what we ignore (unknown op/t), strict about what we accept (well-formed CBOR,
// map header and body, no trailing bytes).
import { decodeFirst } from '@atcute/cbor'
import { isPlainMap } from './values.ts'
import { frameTooLarge, MAX_FRAME_BYTES } from './limits.ts'

export const KNOWN_TYPES = ['#commit', '#sync', '#identity', '#account', '#info'] as const
export type MessageType = (typeof KNOWN_TYPES)[number]

export type DecodedFrame =
  | { kind: 'message'; type: MessageType; body: Record<string, unknown> }
  | { kind: 'error'; error: string; message: string | null }
  | { kind: 'unknown'; op: number; t: string | null }
  | { kind: 'invalid'; reason: 'decode' | 'size'; detail: string }

function isKnownType(t: string): t is MessageType {
  return (KNOWN_TYPES as readonly string[]).includes(t)
}

/** Never throws. */
export function decodeFrame(bytes: Uint8Array): DecodedFrame {
  if (frameTooLarge(bytes.byteLength)) {
    return { kind: 'invalid', reason: 'size', detail: `frame ${bytes.byteLength} > ${MAX_FRAME_BYTES}` }
  }
  let header: unknown
  let body: unknown
  try {
    const [h, rest] = decodeFirst(bytes)
    if (rest.length === 0) return { kind: 'invalid', reason: 'decode', detail: 'missing body' }
    const [b, tail] = decodeFirst(rest)
    if (tail.length !== 0) return { kind: 'invalid', reason: 'decode', detail: 'trailing bytes' }
    header = h
    body = b
  } catch (err) {
    return { kind: 'invalid', reason: 'decode', detail: `cbor: ${(err as Error).message}` }
  }
  if (!isPlainMap(header)) return { kind: 'invalid', reason: 'decode', detail: 'header not a map' }
  const op = header.op
  if (typeof op !== 'number' || !Number.isSafeInteger(op)) {
    return { kind: 'invalid', reason: 'decode', detail: 'header op not an integer' }
  }
  const t = header.t
  if (t !== undefined && typeof t !== 'string') {
    return { kind: 'invalid', reason: 'decode', detail: 'header t not a string' }
  }
  if (!isPlainMap(body)) return { kind: 'invalid', reason: 'decode', detail: 'body not a map' }
  if (op === 1) {
    if (t === undefined) return { kind: 'invalid', reason: 'decode', detail: 'message without t' }
    if (!isKnownType(t)) return { kind: 'unknown', op, t }
    return { kind: 'message', type: t, body }
  }
  if (op === -1) {
    if (typeof body.error !== 'string') return { kind: 'invalid', reason: 'decode', detail: 'error frame without error' }
    const message = typeof body.message === 'string' ? body.message : null
    return { kind: 'error', error: body.error, message }
  }
  return { kind: 'unknown', op, t: t ?? null }
}
