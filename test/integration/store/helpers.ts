// Shared by the store tests and bench/store: synthetic accepted events and database setup.

import { encode } from '@atcute/cbor'
import { createPool, type Pool } from '../../../src/core/db.ts'
import { createLogger } from '../../../src/core/log.ts'
import { migrate } from '../../../src/core/migrate.ts'
import type { AcceptedEvent, EventKind } from '../../../src/store/sequencer.ts'

export const log = createLogger('silent')

const SEQ_KEY = [0x63, 0x73, 0x65, 0x71, 0x00] // text(3) "seq" followed by the placeholder uint 0

/** Finds the placeholder the way the validator reports it: the value byte after the "seq" key. */
export function findSeqOffset(frame: Uint8Array, from = 0): number {
  outer: for (let i = from; i + SEQ_KEY.length <= frame.length; i++) {
    for (let j = 0; j < SEQ_KEY.length; j++) if (frame[i + j] !== SEQ_KEY[j]) continue outer
    return i + 4
  }
  throw new Error('no seq placeholder in frame')
}

const TYPES: Record<EventKind, string> = { commit: '#commit', sync: '#sync', identity: '#identity', account: '#account' }

/** A frame {op:1,t} + {did, seq: 0, time, pad} with `padBytes` of filler (≈1.5 KB default). */
export function makeEvent(did: string, opts: Partial<AcceptedEvent> & { padBytes?: number } = {}): AcceptedEvent {
  const kind = opts.kind ?? 'identity'
  const header = encode({ op: 1, t: TYPES[kind] })
  const body = encode({ did, seq: 0, time: new Date().toISOString(), pad: 'x'.repeat(opts.padBytes ?? 1400) })
  const frame = new Uint8Array(header.length + body.length)
  frame.set(header, 0)
  frame.set(body, header.length)
  const { padBytes: _p, ...rest } = opts
  return { did, kind, frame, seqOffset: findSeqOffset(frame, header.length), ...rest }
}

export async function migratedPool(url: string, max = 4): Promise<Pool> {
  const pool = createPool(url, { max, log })
  await migrate(pool, log)
  return pool
}

export async function insertHost(pool: Pool, hostname: string, lastSeq = -1): Promise<number> {
  const { rows } = await pool.query<{ id: number }>(
    'INSERT INTO host (hostname, account_limit, last_seq) VALUES ($1, 100, $2) RETURNING id',
    [hostname, lastSeq],
  )
  return rows[0]!.id
}

export async function insertAccount(pool: Pool, did: string, hostId: number): Promise<void> {
  await pool.query('INSERT INTO account (did, host_id) VALUES ($1, $2)', [did, hostId])
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

export { cuttableProxy } from '../../helpers/db.ts'
