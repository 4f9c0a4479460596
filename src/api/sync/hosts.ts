// com.atproto.sync.listHosts and com.atproto.sync.getHostStatus.
//
// listHosts returns hosts that have delivered at least one event (a persisted upstream cursor)
// or whose status is `active` (subscribed, possibly quiet): a PDS operator who just ran
// requestCrawl sees their host at once, while hosts that never produced anything and were banned
// or went offline stay out of the list. getHostStatus answers for every known host. Order is by
// internal id, i.e. first seen, oldest first (the lexicon's recommendation); the cursor is the
// last id of the page, present only when another page exists.

import type { Pool } from '../../core/db.ts'
import { XrpcError, sendJson, type ApiServer } from '../http.ts'
import { hostnameParam, idCursor, intParam } from '../params.ts'

interface HostRow {
  id: number
  hostname: string
  last_seq: number
  account_count: number
  status: string
}

export interface HostView {
  hostname: string
  seq?: number
  accountCount: number
  status: string
}

/** `seq` is omitted until the host has delivered something (stored as -1). */
function hostView(r: HostRow): HostView {
  return r.last_seq >= 0
    ? { hostname: r.hostname, seq: r.last_seq, accountCount: r.account_count, status: r.status }
    : { hostname: r.hostname, accountCount: r.account_count, status: r.status }
}

export function registerHostEndpoints(api: ApiServer, db: Pool): void {
  api.query('com.atproto.sync.listHosts', async ({ url, res }) => {
    const limit = intParam(url.searchParams, 'limit', { min: 1, max: 1000, default: 200 })
    const after = idCursor(url.searchParams)
    const { rows } = await db.query<HostRow>(
      `SELECT id, hostname, last_seq, account_count, status FROM host
       WHERE id > $1 AND (last_seq >= 0 OR status = 'active')
       ORDER BY id LIMIT $2`,
      [after, limit + 1],
    )
    const more = rows.length > limit
    const page = more ? rows.slice(0, limit) : rows
    const body: { cursor?: string; hosts: HostView[] } = { hosts: page.map(hostView) }
    if (more) body.cursor = String(page[page.length - 1]!.id)
    sendJson(res, 200, body)
  })

  api.query('com.atproto.sync.getHostStatus', async ({ url, res }) => {
    const hostname = hostnameParam(url.searchParams, 'hostname')
    const { rows } = await db.query<HostRow>('SELECT id, hostname, last_seq, account_count, status FROM host WHERE hostname = $1', [
      hostname,
    ])
    if (!rows[0]) throw new XrpcError(404, 'HostNotFound', `host not found: ${hostname}`)
    sendJson(res, 200, hostView(rows[0]))
  })
}
