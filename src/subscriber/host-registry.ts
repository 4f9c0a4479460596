// Postgres side of upstream hosts: the `host` rows the subscribers run from, domain bans, and
// the admissions ledger behind the new-hosts-per-day limit. `host.last_seq` is written by the
// sequencer (in the transaction that persists the events it covers); everything else about a
// host row that changes at runtime is written here, on state transitions only (connect, failure,
// status change) plus a periodic `last_event_at` touch, so thousands of busy hosts cost a few
// queries per minute, not per event.

import type { Pool } from '../core/db.ts'
import { domainBanCandidates } from './hostname.ts'

export type HostStatus = 'active' | 'idle' | 'offline' | 'throttled' | 'banned'

export const HOST_STATUSES: readonly HostStatus[] = ['active', 'idle', 'offline', 'throttled', 'banned']

export interface HostRecord {
  id: number
  hostname: string
  noSsl: boolean
  status: HostStatus
  /** -1 = no cursor (connect at the live head) */
  lastSeq: number
  /** upstream seqs above lastSeq already persisted (skipped if the host sends them again) */
  doneAbove: number[]
  accountCount: number
  accountLimit: number
  trusted: boolean
  adminAdded: boolean
  failureCount: number
  lastError: string | null
  lastErrorAt: Date | null
  lastEventAt: Date | null
  createdAt: Date
  updatedAt: Date
}

interface HostRow {
  id: number
  hostname: string
  no_ssl: boolean
  status: HostStatus
  last_seq: number
  done_above: Array<string | number>
  account_count: number
  account_limit: number
  trusted: boolean
  admin_added: boolean
  failure_count: number
  last_error: string | null
  last_error_at: Date | null
  last_event_at: Date | null
  created_at: Date
  updated_at: Date
}

const COLUMNS = `id, hostname, no_ssl, status, last_seq, done_above, account_count, account_limit, trusted, admin_added,
  failure_count, last_error, last_error_at, last_event_at, created_at, updated_at`

function toRecord(r: HostRow): HostRecord {
  return {
    id: r.id,
    hostname: r.hostname,
    noSsl: r.no_ssl,
    status: r.status,
    lastSeq: r.last_seq,
    // node-postgres leaves int8 array elements as strings
    doneAbove: (r.done_above ?? []).map(Number),
    accountCount: r.account_count,
    accountLimit: r.account_limit,
    trusted: r.trusted,
    adminAdded: r.admin_added,
    failureCount: r.failure_count,
    lastError: r.last_error,
    lastErrorAt: r.last_error_at,
    lastEventAt: r.last_event_at,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  }
}

export interface NewHost {
  hostname: string
  noSsl: boolean
  accountLimit: number
  trusted: boolean
  adminAdded: boolean
}

export type CreateHostResult =
  | { kind: 'created'; host: HostRecord }
  /** someone else inserted it meanwhile (concurrent requestCrawl): nothing counted */
  | { kind: 'exists'; host: HostRecord }
  | { kind: 'daily-limit'; limit: number }

/** Sliding window of the new-hosts-per-day limit. */
export const ADMISSION_WINDOW_MS = 86_400_000

// Serialises admissions so that two concurrent requestCrawls cannot both take the last slot.
const ADMISSION_LOCK_KEY = 0x7265_6c61 // 'rela'

/** Error text stored on the host row is for operators; keep it short and single-line. */
export function errorText(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err)
  return msg.replace(/\s+/g, ' ').slice(0, 500)
}

export class HostRegistry {
  readonly db: Pool

  constructor(db: Pool) {
    this.db = db
  }

  async list(): Promise<HostRecord[]> {
    const { rows } = await this.db.query<HostRow>(`SELECT ${COLUMNS} FROM host ORDER BY id`)
    return rows.map(toRecord)
  }

  async get(hostname: string): Promise<HostRecord | null> {
    const { rows } = await this.db.query<HostRow>(`SELECT ${COLUMNS} FROM host WHERE hostname = $1`, [hostname])
    return rows[0] ? toRecord(rows[0]) : null
  }

  async getById(id: number): Promise<HostRecord | null> {
    const { rows } = await this.db.query<HostRow>(`SELECT ${COLUMNS} FROM host WHERE id = $1`, [id])
    return rows[0] ? toRecord(rows[0]) : null
  }

  /** The ban covering `hostname` (the host itself or any parent domain), or null. */
  async domainBan(hostname: string): Promise<string | null> {
    const candidates = domainBanCandidates(hostname)
    const { rows } = await this.db.query<{ domain: string }>(
      'SELECT domain FROM domain_ban WHERE domain = ANY($1::text[]) ORDER BY length(domain) DESC LIMIT 1',
      [candidates],
    )
    return rows[0]?.domain ?? null
  }

  /** Public admissions in the last 24 hours. */
  async admissionsToday(now = Date.now()): Promise<number> {
    const { rows } = await this.db.query<{ n: number }>('SELECT count(*)::int AS n FROM host_admission WHERE admitted_at > $1', [
      new Date(now - ADMISSION_WINDOW_MS),
    ])
    return rows[0]!.n
  }

  /**
   * Insert a host that has been validated. With `dailyLimit` (public requestCrawl) the admission
   * is counted against the sliding 24 h window in the same transaction, under an advisory lock;
   * admin and seed adds pass null and are not counted.
   */
  async create(h: NewHost, dailyLimit: number | null, now = Date.now()): Promise<CreateHostResult> {
    const client = await this.db.connect()
    try {
      await client.query('BEGIN')
      if (dailyLimit !== null) {
        await client.query('SELECT pg_advisory_xact_lock($1)', [ADMISSION_LOCK_KEY])
        const { rows } = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM host_admission WHERE admitted_at > $1', [
          new Date(now - ADMISSION_WINDOW_MS),
        ])
        if (rows[0]!.n >= dailyLimit) {
          await client.query('ROLLBACK')
          return { kind: 'daily-limit', limit: dailyLimit }
        }
      }
      const ins = await client.query<HostRow>(
        `INSERT INTO host (hostname, no_ssl, status, last_seq, account_limit, trusted, admin_added)
         VALUES ($1, $2, 'active', -1, $3, $4, $5)
         ON CONFLICT (hostname) DO NOTHING
         RETURNING ${COLUMNS}`,
        [h.hostname, h.noSsl, h.accountLimit, h.trusted, h.adminAdded],
      )
      if (!ins.rows[0]) {
        await client.query('ROLLBACK')
        const existing = await this.get(h.hostname)
        if (!existing) throw new Error(`host ${h.hostname} vanished during insert`)
        return { kind: 'exists', host: existing }
      }
      if (dailyLimit !== null) {
        await client.query('INSERT INTO host_admission (hostname, admitted_at) VALUES ($1, $2)', [h.hostname, new Date(now)])
        // The ledger only needs a day; trim it here rather than with a separate job.
        await client.query('DELETE FROM host_admission WHERE admitted_at < $1', [new Date(now - 2 * ADMISSION_WINDOW_MS)])
      }
      await client.query('COMMIT')
      return { kind: 'created', host: toRecord(ins.rows[0]) }
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {})
      throw err
    } finally {
      client.release()
    }
  }

  async setStatus(id: number, status: HostStatus): Promise<void> {
    await this.db.query('UPDATE host SET status = $2, updated_at = now() WHERE id = $1 AND status IS DISTINCT FROM $2', [id, status])
  }

  /**
   * The upstream accepted our subscription. A banned host stays banned (an admin may have banned
   * it while we were dialling).
   */
  async recordConnected(id: number): Promise<void> {
    await this.db.query(
      `UPDATE host SET status = CASE WHEN status = 'banned' THEN status ELSE 'active' END, failure_count = 0, updated_at = now()
       WHERE id = $1`,
      [id],
    )
  }

  /** A failed or dropped connection; `status` when the failure changes it (offline). */
  async recordFailure(id: number, failures: number, error: string, status?: HostStatus): Promise<void> {
    await this.db.query(
      `UPDATE host SET failure_count = $2, last_error = $3, last_error_at = now(), updated_at = now(),
         status = CASE WHEN $4::text IS NOT NULL AND status <> 'banned' THEN $4::text ELSE status END
       WHERE id = $1`,
      [id, failures, error.slice(0, 500), status ?? null],
    )
  }

  /** Record an error without counting a failure (e.g. an oversized frame, an upstream #info). */
  async recordError(id: number, error: string): Promise<void> {
    await this.db.query('UPDATE host SET last_error = $2, last_error_at = now() WHERE id = $1', [id, error.slice(0, 500)])
  }

  /**
   * Forget the cursor (policy reset to the live head): the sequencer only ever moves `last_seq`
   * forward, so a reset has to be written here.
   */
  async resetCursor(id: number, status?: HostStatus): Promise<void> {
    await this.db.query(
      `UPDATE host SET last_seq = -1, done_above = '{}', updated_at = now(),
         status = CASE WHEN $2::text IS NOT NULL AND status <> 'banned' THEN $2::text ELSE status END
       WHERE id = $1`,
      [id, status ?? null],
    )
  }

  /** Batch update of `last_event_at` (periodic, for hosts that delivered something). */
  async touchLastEvent(times: Map<number, number>): Promise<void> {
    if (times.size === 0) return
    await this.db.query(
      `UPDATE host SET last_event_at = v.t
       FROM unnest($1::bigint[], $2::timestamptz[]) AS v(id, t)
       WHERE host.id = v.id AND (host.last_event_at IS NULL OR host.last_event_at < v.t)`,
      [[...times.keys()], [...times.values()].map((t) => new Date(t))],
    )
  }
}
