// The validation worker's reads and status writes on `account` / `host`. Repo state (rev, commit,
// data CID) is never written here: the sequencer persists it with the event that carries it.
// `host.account_count` counts a host's accounts that are not upstream-`deleted`; every change to
// that set adjusts it in the same transaction.
import { withTransaction, type Pool } from '../../core/db.ts'
import type { LocalStatus } from './status.ts'

export interface AccountRow {
  uid: number
  did: string
  hostId: number
  /** normalised hostname of hostId */
  hostname: string
  hostNoSsl: boolean
  hostAdminAdded: boolean
  status: LocalStatus
  upstreamStatus: string
  rev: string | null
  commitCid: string | null
  dataCid: string | null
  desynchronized: boolean
}

export interface AccountStore {
  load(did: string): Promise<AccountRow | null>
  /**
   * First sight of a DID on its authoritative host: count it on the host and insert it, as
   * 'throttled' when the host is already at its account limit. Returns the existing row unchanged
   * when another writer created it first.
   */
  create(did: string, hostId: number): Promise<AccountRow>
  /** Moves the account to `toHostId` if it is still on `fromHostId`; returns the row after. */
  migrate(did: string, fromHostId: number, toHostId: number): Promise<AccountRow | null>
  setUpstreamStatus(did: string, upstreamStatus: string): Promise<void>
  setDesynchronized(did: string, desynchronized: boolean): Promise<void>
}

const SELECT = `SELECT a.uid, a.did, a.host_id, h.hostname, h.no_ssl, h.admin_added, a.status, a.upstream_status,
       a.rev, a.commit_cid, a.data_cid, a.desynchronized
  FROM account a JOIN host h ON h.id = a.host_id`

interface Row {
  uid: number
  did: string
  host_id: number
  hostname: string
  no_ssl: boolean
  admin_added: boolean
  status: LocalStatus
  upstream_status: string
  rev: string | null
  commit_cid: string | null
  data_cid: string | null
  desynchronized: boolean
}

function toRow(r: Row): AccountRow {
  return {
    uid: r.uid,
    did: r.did,
    hostId: r.host_id,
    hostname: r.hostname,
    hostNoSsl: r.no_ssl,
    hostAdminAdded: r.admin_added,
    status: r.status,
    upstreamStatus: r.upstream_status,
    rev: r.rev,
    commitCid: r.commit_cid,
    dataCid: r.data_cid,
    desynchronized: r.desynchronized,
  }
}

// Connection loss, server shutdown, serialization failure, deadlock: worth another try.
const TRANSIENT_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', '57P01', '57P02', '57P03', '40001', '40P01', '53300'])

function isTransient(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code
  if (typeof code === 'string' && (TRANSIENT_CODES.has(code) || code.startsWith('08'))) return true
  const msg = (err as Error)?.message ?? ''
  return /Connection terminated|timeout exceeded when trying to connect/i.test(msg)
}

export async function withRetry<T>(fn: () => Promise<T>, delaysMs: readonly number[] = [50, 250, 1000, 2000]): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn()
    } catch (err) {
      if (attempt >= delaysMs.length || !isTransient(err)) throw err
      await new Promise((r) => setTimeout(r, delaysMs[attempt]))
    }
  }
}

export class PgAccountStore implements AccountStore {
  private readonly pool: Pool

  constructor(pool: Pool) {
    this.pool = pool
  }

  load(did: string): Promise<AccountRow | null> {
    return withRetry(async () => {
      const { rows } = await this.pool.query<Row>(`${SELECT} WHERE a.did = $1`, [did])
      return rows[0] ? toRow(rows[0]) : null
    })
  }

  async create(did: string, hostId: number): Promise<AccountRow> {
    await withRetry(() =>
      withTransaction(this.pool, async (c) => {
        // The host row lock serialises account creation per host, so the limit check is exact.
        const h = await c.query<{ account_count: number; account_limit: number }>(
          'SELECT account_count, account_limit FROM host WHERE id = $1 FOR UPDATE',
          [hostId],
        )
        if (!h.rows[0]) throw new Error(`host ${hostId} does not exist`)
        const throttled = h.rows[0].account_count >= h.rows[0].account_limit
        const ins = await c.query(
          'INSERT INTO account (did, host_id, status) VALUES ($1, $2, $3) ON CONFLICT (did) DO NOTHING RETURNING uid',
          [did, hostId, throttled ? 'throttled' : 'active'],
        )
        if (ins.rowCount === 1) {
          await c.query('UPDATE host SET account_count = account_count + 1, updated_at = now() WHERE id = $1', [hostId])
        }
      }),
    )
    const row = await this.load(did)
    if (!row) throw new Error(`account ${did} vanished after creation`)
    return row
  }

  async migrate(did: string, fromHostId: number, toHostId: number): Promise<AccountRow | null> {
    await withRetry(() =>
      withTransaction(this.pool, async (c) => {
        const u = await c.query<{ upstream_status: string }>(
          'UPDATE account SET host_id = $2, updated_at = now() WHERE did = $1 AND host_id = $3 RETURNING upstream_status',
          [did, toHostId, fromHostId],
        )
        if (u.rows[0] && u.rows[0].upstream_status !== 'deleted') {
          // Lock in id order so two opposite migrations can't deadlock.
          await c.query(
            `UPDATE host SET account_count = greatest(account_count + CASE WHEN id = $1 THEN 1 ELSE -1 END, 0), updated_at = now()
              WHERE id IN (SELECT id FROM host WHERE id IN ($1, $2) ORDER BY id FOR UPDATE)`,
            [toHostId, fromHostId],
          )
        }
      }),
    )
    return this.load(did)
  }

  async setUpstreamStatus(did: string, upstreamStatus: string): Promise<void> {
    await withRetry(() =>
      withTransaction(this.pool, async (c) => {
        const cur = await c.query<{ upstream_status: string; host_id: number }>(
          'SELECT upstream_status, host_id FROM account WHERE did = $1 FOR UPDATE',
          [did],
        )
        const prev = cur.rows[0]
        if (!prev || prev.upstream_status === upstreamStatus) return
        await c.query('UPDATE account SET upstream_status = $2, updated_at = now() WHERE did = $1', [did, upstreamStatus])
        const wasDeleted = prev.upstream_status === 'deleted'
        const isDeleted = upstreamStatus === 'deleted'
        if (wasDeleted !== isDeleted) {
          await c.query('UPDATE host SET account_count = greatest(account_count + $2, 0), updated_at = now() WHERE id = $1', [
            prev.host_id,
            isDeleted ? -1 : 1,
          ])
        }
      }),
    )
  }

  async setDesynchronized(did: string, desynchronized: boolean): Promise<void> {
    await withRetry(() =>
      this.pool.query('UPDATE account SET desynchronized = $2, updated_at = now() WHERE did = $1', [did, desynchronized]),
    )
  }
}
