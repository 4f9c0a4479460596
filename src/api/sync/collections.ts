// com.atproto.sync.listReposByCollection, served from `collection_repo` (maintained by the
// sequencer from every accepted create/delete op: a repo is listed while it holds at least one
// record in the collection). The index fills from the events the relay sees, so repos that have
// not written since the relay started following their host appear once they do.
//
// Accounts the relay does not serve (taken down, suspended, throttled, or inactive upstream) are
// left out: a consumer enumerating a collection would otherwise go on to fetch repos that are not
// available. They reappear when the account is active again (their rows are kept).

import type { Pool } from '../../core/db.ts'
import { sendJson, type ApiServer, invalidRequest } from '../http.ts'
import { intParam, nsidParam, single } from '../params.ts'
import { isDid } from '../../validator/syntax.ts'

export function registerCollectionEndpoints(api: ApiServer, db: Pool): void {
  api.query('com.atproto.sync.listReposByCollection', async ({ url, res }) => {
    const collection = nsidParam(url.searchParams, 'collection')
    const limit = intParam(url.searchParams, 'limit', { min: 1, max: 2000, default: 500 })
    // Keyset over the primary key (collection, did); the collection is fixed, so the cursor is
    // the last DID of the previous page.
    const cursor = single(url.searchParams, 'cursor')
    if (cursor !== undefined && !isDid(cursor)) throw invalidRequest('parameter cursor is not a cursor returned by this server')
    const { rows } = await db.query<{ did: string }>(
      `SELECT cr.did FROM collection_repo cr
       WHERE cr.collection = $1 AND cr.did > $2 AND cr.record_count > 0
         AND NOT EXISTS (
           SELECT 1 FROM account a
           WHERE a.did = cr.did AND (a.status <> 'active' OR a.upstream_status <> 'active'))
       ORDER BY cr.did LIMIT $3`,
      [collection, cursor ?? '', limit + 1],
    )
    const more = rows.length > limit
    const page = more ? rows.slice(0, limit) : rows
    const body: { cursor?: string; repos: Array<{ did: string }> } = { repos: page.map((r) => ({ did: r.did })) }
    if (more) body.cursor = page[page.length - 1]!.did
    sendJson(res, 200, body)
  })
}
