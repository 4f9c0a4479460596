// com.atproto.sync.listRepos, getRepoStatus, getLatestCommit and getRepo, served from the account
// table (repo state is written by the sequencer with each accepted #commit/#sync).

import type { Pool } from '../../core/db.ts'
import { accountView, inactiveRepoError, type AccountView } from '../account-status.ts'
import { XrpcError, sendJson, type ApiServer } from '../http.ts'
import { didParam, idCursor, intParam, tidParam } from '../params.ts'

interface AccountRow {
  uid: number
  did: string
  status: string
  upstream_status: string
  desynchronized: boolean
  rev: string | null
  commit_cid: string | null
}

const COLUMNS = 'a.uid, a.did, a.status, a.upstream_status, a.desynchronized, a.rev, a.commit_cid'

type RepoEntry = { did: string; head: string; rev: string } & AccountView

const repoNotFound = (did: string) => new XrpcError(404, 'RepoNotFound', `account not found: ${did}`)

export function registerRepoEndpoints(api: ApiServer, db: Pool): void {
  // Every account with a known commit, active or not (inactive ones carry active:false and the
  // reason), so a consumer mirroring the network can tell a takedown from a missing repo. Accounts
  // the relay has not seen a commit for yet are omitted: `head` and `rev` are required.
  api.query('com.atproto.sync.listRepos', async ({ url, res }) => {
    const limit = intParam(url.searchParams, 'limit', { min: 1, max: 1000, default: 500 })
    const after = idCursor(url.searchParams)
    const { rows } = await db.query<AccountRow>(
      `SELECT ${COLUMNS} FROM account a
       WHERE a.uid > $1 AND a.commit_cid IS NOT NULL AND a.rev IS NOT NULL
       ORDER BY a.uid LIMIT $2`,
      [after, limit + 1],
    )
    const more = rows.length > limit
    const page = more ? rows.slice(0, limit) : rows
    const repos: RepoEntry[] = page.map((r) => ({ did: r.did, head: r.commit_cid!, rev: r.rev!, ...accountView(r) }))
    const body: { cursor?: string; repos: RepoEntry[] } = { repos }
    if (more) body.cursor = String(page[page.length - 1]!.uid)
    sendJson(res, 200, body)
  })

  api.query('com.atproto.sync.getRepoStatus', async ({ url, res }) => {
    const did = didParam(url.searchParams)
    const { rows } = await db.query<AccountRow>(`SELECT ${COLUMNS} FROM account a WHERE a.did = $1`, [did])
    const row = rows[0]
    if (!row) throw repoNotFound(did)
    const body: { did: string; rev?: string } & AccountView = { did, ...accountView(row) }
    if (row.rev !== null) body.rev = row.rev
    sendJson(res, 200, body)
  })

  api.query('com.atproto.sync.getLatestCommit', async ({ url, res }) => {
    const did = didParam(url.searchParams)
    const { rows } = await db.query<AccountRow>(`SELECT ${COLUMNS} FROM account a WHERE a.did = $1`, [did])
    const row = rows[0]
    if (!row) throw repoNotFound(did)
    const err = inactiveRepoError(accountView(row))
    if (err) throw err
    if (row.commit_cid === null || row.rev === null) {
      throw new XrpcError(404, 'RepoNotSynchronized', 'the relay does not know the current repo state of this account yet')
    }
    sendJson(res, 200, { cid: row.commit_cid, rev: row.rev })
  })

  // The relay keeps no repo data: redirect to the account's host, which is the host the relay has
  // verified as authoritative for the DID (no DID resolution on this path).
  api.query('com.atproto.sync.getRepo', async ({ url, res }) => {
    const did = didParam(url.searchParams)
    tidParam(url.searchParams, 'since')
    const { rows } = await db.query<AccountRow & { hostname: string; no_ssl: boolean }>(
      `SELECT ${COLUMNS}, h.hostname, h.no_ssl FROM account a JOIN host h ON h.id = a.host_id WHERE a.did = $1`,
      [did],
    )
    const row = rows[0]
    if (!row) throw repoNotFound(did)
    const err = inactiveRepoError(accountView(row))
    if (err) throw err
    const location = `${row.no_ssl ? 'http' : 'https'}://${row.hostname}/xrpc/com.atproto.sync.getRepo${url.search}`
    res.writeHead(302, { location, 'content-length': 0 })
    res.end()
  })
}
