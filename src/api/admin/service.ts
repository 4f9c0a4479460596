// The database side of admin actions, with their live effects sent through RelayControl after
// the transaction commits (a control call never runs inside a transaction: it may be slow, and a
// rollback must not leave a disconnect or an #account event behind for a change that never
// happened). Every action is idempotent, so an operator can retry one that failed halfway.

import { withTransaction, type Pool } from '../../core/db.ts'
import type { Logger } from '../../core/log.ts'
import { checkDnsName, domainBanCandidates } from '../../subscriber/hostname.ts'
import type { RelayControl } from '../control.ts'
import { XrpcError, invalidRequest } from '../http.ts'

export const hostNotFound = (hostname: string) => new XrpcError(404, 'HostNotFound', `host not found: ${hostname}`)
export const accountNotFound = (did: string) => new XrpcError(404, 'RepoNotFound', `account not found: ${did}`)

export interface LimitChange {
  hostname: string
  previousLimit: number
  accountLimit: number
  /** DIDs moved from throttled to active, oldest first */
  released: string[]
  /** DIDs moved from active to throttled, newest first */
  throttled: string[]
}

/** `example.com`, `*.example.com`, `Example.COM.` → `example.com`; localhost allowed. */
export function normalizeBanDomain(input: unknown): string {
  if (typeof input !== 'string') throw invalidRequest('Domain is required')
  let d = input.trim().toLowerCase()
  if (d.startsWith('*.')) d = d.slice(2)
  if (d.endsWith('.')) d = d.slice(0, -1)
  if (d === '') throw invalidRequest('Domain is required')
  if (d === 'localhost') return d
  const err = checkDnsName(d)
  if (err !== null) throw invalidRequest(`Domain is not a valid domain name: ${err}`)
  return d
}

export class AdminService {
  private readonly db: Pool
  private readonly control: RelayControl
  private readonly log: Logger

  constructor(db: Pool, control: RelayControl, log: Logger) {
    this.db = db
    this.control = control
    this.log = log
  }

  // --- accounts

  /** Local takedown: status, then hide from replay, reload workers, broadcast #account. */
  async takedown(did: string): Promise<void> {
    const r = await this.db.query(`UPDATE account SET status = 'takendown', updated_at = now() WHERE did = $1`, [did])
    if (r.rowCount !== 1) throw accountNotFound(did)
    // Hide first: the #account announcing the takedown must not be among the hidden events.
    await this.control.hideAccountEvents(did)
    await this.control.invalidateAccount(did)
    await this.control.emitAccountStatus(did)
    this.log.info({ did }, 'admin: account taken down')
  }

  /**
   * Lifts a local takedown. Events removed from replay stay removed; consumers learn of the
   * reversal from the #account event and can resync the repo. An account that is not taken down
   * is left as it is (a throttled or suspended account does not become active this way).
   */
  async reverseTakedown(did: string): Promise<void> {
    const r = await this.db.query<{ did: string }>(
      `UPDATE account SET status = 'active', updated_at = now() WHERE did = $1 AND status = 'takendown' RETURNING did`,
      [did],
    )
    if (r.rowCount === 0) {
      const exists = await this.db.query('SELECT 1 FROM account WHERE did = $1', [did])
      if (exists.rowCount === 0) throw accountNotFound(did)
      return
    }
    await this.control.invalidateAccount(did)
    await this.control.emitAccountStatus(did)
    this.log.info({ did }, 'admin: takedown reversed')
  }

  async takedowns(afterUid: number, size: number): Promise<{ dids: string[]; cursor?: string }> {
    const { rows } = await this.db.query<{ uid: number; did: string }>(
      `SELECT uid, did FROM account WHERE status = 'takendown' AND uid > $1 ORDER BY uid LIMIT $2`,
      [afterUid, size + 1],
    )
    const more = rows.length > size
    const page = more ? rows.slice(0, size) : rows
    return more ? { dids: page.map((r) => r.did), cursor: String(page[page.length - 1]!.uid) } : { dids: page.map((r) => r.did) }
  }

  // --- hosts

  /**
   * Sets a host's account limit. Accounts that are not throttled count against it (taken-down
   * and suspended ones included, since they were admitted). Raising it releases throttled
   * accounts oldest first up to the new headroom; lowering it throttles the newest active
   * accounts beyond it. `account_count` is recomputed from the account table on the way.
   */
  async changeLimits(hostname: string, accountLimit: number): Promise<LimitChange> {
    const change = await withTransaction(this.db, async (c) => {
      // The row lock serialises with concurrent limit changes and with admission of new accounts
      // (which updates the host row).
      const host = await c.query<{ id: number; account_limit: number }>(
        'SELECT id, account_limit FROM host WHERE hostname = $1 FOR UPDATE',
        [hostname],
      )
      if (!host.rows[0]) throw hostNotFound(hostname)
      const { id, account_limit: previousLimit } = host.rows[0]
      const counted = await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM account WHERE host_id = $1 AND status <> 'throttled'`, [
        id,
      ])
      const admitted = counted.rows[0]!.n
      let released: string[] = []
      let throttled: string[] = []
      if (accountLimit > admitted) {
        const r = await c.query<{ uid: number; did: string }>(
          `UPDATE account SET status = 'active', updated_at = now()
           WHERE uid IN (SELECT uid FROM account WHERE host_id = $1 AND status = 'throttled' ORDER BY uid LIMIT $2 FOR UPDATE)
           RETURNING uid, did`,
          [id, accountLimit - admitted],
        )
        released = r.rows.sort((a, b) => a.uid - b.uid).map((x) => x.did)
      } else if (accountLimit < admitted) {
        const r = await c.query<{ uid: number; did: string }>(
          `UPDATE account SET status = 'throttled', updated_at = now()
           WHERE uid IN (SELECT uid FROM account WHERE host_id = $1 AND status = 'active' ORDER BY uid DESC LIMIT $2 FOR UPDATE)
           RETURNING uid, did`,
          [id, admitted - accountLimit],
        )
        throttled = r.rows.sort((a, b) => b.uid - a.uid).map((x) => x.did)
      }
      await c.query(
        `UPDATE host SET account_limit = $2, updated_at = now(),
           account_count = (SELECT count(*) FROM account WHERE host_id = $1)
         WHERE id = $1`,
        [id, accountLimit],
      )
      return { hostname, previousLimit, accountLimit, released, throttled }
    })
    await this.control.setHostLimits(hostname, accountLimit)
    for (const did of [...change.released, ...change.throttled]) {
      await this.control.invalidateAccount(did)
      await this.control.emitAccountStatus(did)
    }
    this.log.info(
      { hostname, accountLimit, previousLimit: change.previousLimit, released: change.released.length, throttled: change.throttled.length },
      'admin: host account limit changed',
    )
    return change
  }

  /** Bans a host: status `banned` and the connection closed now. */
  async blockHost(hostname: string): Promise<void> {
    const r = await this.db.query(`UPDATE host SET status = 'banned', updated_at = now() WHERE hostname = $1`, [hostname])
    if (r.rowCount !== 1) throw hostNotFound(hostname)
    await this.control.disconnectHost(hostname)
    this.log.info({ hostname }, 'admin: host blocked')
  }

  /** Lifts a ban and reconnects at once from the stored cursor (indigo waits for a requestCrawl). */
  async unblockHost(hostname: string): Promise<void> {
    const r = await this.db.query(`UPDATE host SET status = 'active', failure_count = 0, updated_at = now() WHERE hostname = $1`, [
      hostname,
    ])
    if (r.rowCount !== 1) throw hostNotFound(hostname)
    try {
      await this.control.connectHost(hostname)
    } catch (err) {
      if (err instanceof XrpcError) throw err
      throw new XrpcError(502, 'UpstreamFailure', `host unblocked, but connecting to it failed: ${(err as Error).message}`)
    }
    this.log.info({ hostname }, 'admin: host unblocked')
  }

  /** Drops an upstream connection; with `block` the host is also banned (indigo killUpstream). */
  async killUpstream(hostname: string, block: boolean): Promise<void> {
    if (block) {
      await this.blockHost(hostname)
      return
    }
    const disconnected = await this.control.disconnectHost(hostname)
    if (!disconnected) throw invalidRequest(`no active connection to host ${hostname}`)
    this.log.info({ hostname }, 'admin: upstream connection killed')
  }

  // --- domains

  async listDomainBans(): Promise<string[]> {
    const { rows } = await this.db.query<{ domain: string }>('SELECT domain FROM domain_ban ORDER BY domain')
    return rows.map((r) => r.domain)
  }

  /** Bans a domain and every name below it; connected hosts under it are disconnected now. */
  async banDomain(domain: string): Promise<string[]> {
    await this.db.query('INSERT INTO domain_ban (domain) VALUES ($1) ON CONFLICT (domain) DO NOTHING', [domain])
    const affected = this.control.connectedHosts().filter((h) => domainBanCandidates(h).includes(domain))
    for (const h of affected) await this.control.disconnectHost(h)
    this.log.info({ domain, disconnected: affected }, 'admin: domain banned')
    return affected
  }

  async unbanDomain(domain: string): Promise<void> {
    await this.db.query('DELETE FROM domain_ban WHERE domain = $1', [domain])
    this.log.info({ domain }, 'admin: domain unbanned')
  }
}
