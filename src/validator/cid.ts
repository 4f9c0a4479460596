// CIDs are carried around as their raw binary form (no 0x00 multibase prefix). Only "blessed" atproto
// CIDs are accepted: CIDv1, codec dag-cbor (0x71) or raw (0x55), sha2-256 with a 32-byte digest,
// i.e. always exactly 36 bytes: 01 <codec> 12 20 <digest>.
import { toString as cidToStringAtcute, decode as decodeCidAtcute, fromString as cidFromStringAtcute } from '@atcute/cid'
import { sha256Into } from './sha256.ts'

export const CID_LENGTH = 36
export const CODEC_DAG_CBOR = 0x71
export const CODEC_RAW = 0x55

export function isBlessedCid(b: Uint8Array): boolean {
  return b.length === CID_LENGTH && b[0] === 0x01 && (b[1] === CODEC_DAG_CBOR || b[1] === CODEC_RAW) && b[2] === 0x12 && b[3] === 0x20
}

/** CID of a dag-cbor block. */
export function cidForCbor(block: Uint8Array): Uint8Array {
  const out = new Uint8Array(CID_LENGTH)
  out[0] = 0x01
  out[1] = CODEC_DAG_CBOR
  out[2] = 0x12
  out[3] = 0x20
  sha256Into(block, out, 4)
  return out
}

export function cidToString(b: Uint8Array): string {
  return cidToStringAtcute(decodeCidAtcute(b))
}

/** base32 multibase string → raw CID bytes; null when unparseable or not a blessed CID. */
export function cidFromString(s: string): Uint8Array | null {
  try {
    const b = cidFromStringAtcute(s).bytes
    return isBlessedCid(b) ? b : null
  } catch {
    return null
  }
}
