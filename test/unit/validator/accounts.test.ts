// Account status rules, the getRepoStatus backoff cache and collection deltas.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { combinedStatus, gateRepoEvent, normalizeUpstreamStatus, upstreamFromAccountEvent } from '../../../src/validator/accounts/status.ts'
import { RepoStatusChecker, type RepoStatusAnswer } from '../../../src/validator/accounts/repo-status.ts'
import { collectionDeltas } from '../../../src/validator/processor.ts'
import type { CommitEvent } from '../../../src/validator/schema.ts'

test('upstream status from #account / getRepoStatus', () => {
  assert.equal(upstreamFromAccountEvent(true, 'deactivated'), 'active')
  assert.equal(upstreamFromAccountEvent(false, 'deleted'), 'deleted')
  assert.equal(upstreamFromAccountEvent(false, null), 'inactive')
  assert.equal(upstreamFromAccountEvent(false, 'weird-new-status'), 'inactive')
  assert.equal(normalizeUpstreamStatus('takendown'), 'takendown')
})

test('combined status: local overrides upstream; throttled reads as throttled; active has no status', () => {
  assert.deepEqual(combinedStatus('active', 'active'), { active: true, status: null })
  assert.deepEqual(combinedStatus('active', 'deactivated'), { active: false, status: 'deactivated' })
  assert.deepEqual(combinedStatus('takendown', 'active'), { active: false, status: 'takendown' })
  assert.deepEqual(combinedStatus('suspended', 'deleted'), { active: false, status: 'suspended' })
  assert.deepEqual(combinedStatus('throttled', 'active'), { active: false, status: 'throttled' })
})

test('repo event gate', () => {
  assert.equal(gateRepoEvent('active', 'active'), 'pass')
  assert.equal(gateRepoEvent('throttled', 'active'), 'throttled')
  assert.equal(gateRepoEvent('takendown', 'active'), 'inactive')
  assert.equal(gateRepoEvent('suspended', 'deactivated'), 'inactive')
  assert.equal(gateRepoEvent('active', 'deactivated'), 'recheck')
})

test('getRepoStatus checker: single-flight, cached answers inside a doubling backoff, recovery clears it', async () => {
  let now = 0
  let answer: RepoStatusAnswer | Error = { kind: 'status', upstream: 'deactivated' }
  let calls = 0
  const c = new RepoStatusChecker({
    fetch: async () => {
      calls++
      await new Promise((r) => setImmediate(r))
      if (answer instanceof Error) throw answer
      return answer
    },
    minIntervalMs: 100,
    maxIntervalMs: 300,
    now: () => now,
  })
  const host = { hostname: 'pds.example.com', noSsl: false, adminAdded: false }
  const [a, b] = await Promise.all([c.check('did:x', host), c.check('did:x', host)])
  assert.equal(calls, 1)
  assert.deepEqual(a, { upstream: 'deactivated', fetched: true })
  assert.equal(a, b)
  assert.deepEqual(await c.check('did:x', host), { upstream: 'deactivated', fetched: false })
  now = 100 // interval 100 elapsed → ask again; next interval 200
  await c.check('did:x', host)
  assert.equal(calls, 2)
  now = 250
  await c.check('did:x', host)
  assert.equal(calls, 2, 'inside the doubled interval')
  now = 300
  answer = new Error('boom')
  assert.deepEqual(await c.check('did:x', host), { upstream: null, fetched: true })
  assert.equal(c.stats().errors, 1)
  now = 600 // capped at 300
  answer = { kind: 'status', upstream: 'active' }
  assert.deepEqual(await c.check('did:x', host), { upstream: 'active', fetched: true })
  assert.equal(c.stats().recovered, 1)
  assert.equal(c.stats().size, 0)
  // forget() drops the backoff (a fresh #account arrived)
  answer = { kind: 'status', upstream: 'deactivated' }
  await c.check('did:y', host)
  c.forget('did:y')
  await c.check('did:y', host)
  assert.equal(calls, 6)
})

test('collection deltas: create +1, delete -1, update 0, per collection', () => {
  const ev = {
    ops: [
      { action: 'create', path: 'app.bsky.feed.post/1', cid: null, prev: undefined },
      { action: 'create', path: 'app.bsky.feed.like/2', cid: null, prev: undefined },
      { action: 'delete', path: 'app.bsky.feed.post/3', cid: null, prev: undefined },
      { action: 'update', path: 'app.bsky.actor.profile/self', cid: null, prev: undefined },
      { action: 'create', path: 'app.bsky.feed.like/4', cid: null, prev: undefined },
    ],
  } as unknown as CommitEvent
  assert.deepEqual(collectionDeltas(ev), [
    { collection: 'app.bsky.feed.post', delta: 0 },
    { collection: 'app.bsky.feed.like', delta: 2 },
    { collection: 'app.bsky.actor.profile', delta: 0 },
  ])
})
