// Account state queries used by validation and the API. Repo-state advances (rev, commit, data
// CID) are written only by the Sequencer, in the same transaction as the event that carries them;
// the helpers here change status fields.

import type { Pool } from '../core/db.ts'

/** Local status set by this relay. */
export type AccountStatus = 'active' | 'takendown' | 'suspended' | 'throttled'
/** Status reported by the account's host. */
export type UpstreamStatus = 'active' | 'deactivated' | 'deleted' | 'desynchronized' | 'suspended' | 'takendown' | 'throttled' | 'inactive'

export interface AccountState {
  uid: number
  did: string
  hostId: number
  status: AccountStatus
  upstreamStatus: UpstreamStatus
  rev: string | null
  commitCid: string | null
  dataCid: string | null
  desynchronized: boolean
}

interface Row {
  uid: number
  did: string
  host_id: number
  status: AccountStatus
  upstream_status: UpstreamStatus
  rev: string | null
  commit_cid: string | null
  data_cid: string | null
  desynchronized: boolean
}

const COLUMNS = 'uid, did, host_id, status, upstream_status, rev, commit_cid, data_cid, desynchronized'

function toState(r: Row): AccountState {
  return {
    uid: r.uid,
    did: r.did,
    hostId: r.host_id,
    status: r.status,
    upstreamStatus: r.upstream_status,
    rev: r.rev,
    commitCid: r.commit_cid,
    dataCid: r.data_cid,
    desynchronized: r.desynchronized,
  }
}

export class Accounts {
  private readonly db: Pool

  constructor(db: Pool) {
    this.db = db
  }

  async getAccountState(did: string): Promise<AccountState | undefined> {
    const { rows } = await this.db.query<Row>(`SELECT ${COLUMNS} FROM account WHERE did = $1`, [did])
    return rows[0] ? toState(rows[0]) : undefined
  }

  /** Batch lookup (validation workers ask for many DIDs at once); missing DIDs are absent from the map. */
  async getAccountStates(dids: readonly string[]): Promise<Map<string, AccountState>> {
    const out = new Map<string, AccountState>()
    if (dids.length === 0) return out
    const { rows } = await this.db.query<Row>(`SELECT ${COLUMNS} FROM account WHERE did = ANY($1::text[])`, [dids])
    for (const r of rows) out.set(r.did, toState(r))
    return out
  }

  /**
   * Returns the account, creating it on `hostId` when it does not exist yet (first event seen from
   * its authoritative host). An existing row is returned unchanged, whatever its host.
   */
  async ensureAccount(did: string, hostId: number): Promise<AccountState> {
    const { rows } = await this.db.query<Row>(
      `WITH ins AS (INSERT INTO account (did, host_id) VALUES ($1, $2) ON CONFLICT (did) DO NOTHING RETURNING ${COLUMNS})
       SELECT ${COLUMNS} FROM ins UNION ALL SELECT ${COLUMNS} FROM account WHERE did = $1 LIMIT 1`,
      [did, hostId],
    )
    if (rows[0]) return toState(rows[0])
    // A concurrent insert of the same DID committed after this statement's snapshot was taken.
    const again = await this.getAccountState(did)
    if (!again) throw new Error(`account ${did} vanished while being created`)
    return again
  }

  /** Sets the local status; returns false when the account does not exist. */
  async setStatus(did: string, status: AccountStatus): Promise<boolean> {
    const r = await this.db.query('UPDATE account SET status = $2, updated_at = now() WHERE did = $1', [did, status])
    return r.rowCount === 1
  }

  /** Sets the status reported by the host; returns false when the account does not exist. */
  async setUpstreamStatus(did: string, upstreamStatus: UpstreamStatus): Promise<boolean> {
    const r = await this.db.query('UPDATE account SET upstream_status = $2, updated_at = now() WHERE did = $1', [did, upstreamStatus])
    return r.rowCount === 1
  }

  /** Strict chain mode flag, outside an event (events carry it in repoState.desynchronized). */
  async setDesynchronized(did: string, desynchronized: boolean): Promise<boolean> {
    const r = await this.db.query('UPDATE account SET desynchronized = $2, updated_at = now() WHERE did = $1', [did, desynchronized])
    return r.rowCount === 1
  }

  /** Moves an account to another host (after a verified migration); returns false when absent. */
  async setHost(did: string, hostId: number): Promise<boolean> {
    const r = await this.db.query('UPDATE account SET host_id = $2, updated_at = now() WHERE did = $1', [did, hostId])
    return r.rowCount === 1
  }
}
