// Mutation fuzzing of real frames through decode + validate: nothing may throw.
// More iterations: FUZZ_ITERATIONS=2000000 node_modules/.bin/node --test test/unit/validator/fuzz.test.ts
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { makeKeypair, createRepo, buildCommit, create, update, del, nextRkey, encodeFrame, writeCar, toCID } from './helpers.ts'
import { decodeEvent, validateCommit, validateSync } from '../../../src/validator/validate.ts'
import { verifierFromDidKey, type Verifier } from '../../../src/validator/keys.ts'
import { spliceSeq } from '../../../src/store/seq-splice.ts'

const ITERATIONS = Number(process.env.FUZZ_ITERATIONS ?? 100_000)

let seed = 987654321
const rnd = (n: number) => {
  seed ^= seed << 13
  seed ^= seed >>> 17
  seed ^= seed << 5
  return (seed >>> 0) % n
}

test(`fuzz: ${ITERATIONS} mutated frames, zero exceptions`, async () => {
  const frames: Uint8Array[] = []
  const verifiers: Verifier[] = []
  for (const curve of ['k256', 'p256'] as const) {
    const kp = await makeKeypair(curve)
    verifiers.push(verifierFromDidKey(kp.did())!)
    let repo = await createRepo(kp, `did:plc:fuzz${curve}00000000000000000`, 10)
    const rks: string[] = []
    for (let i = 0; i < 6; i++) {
      const rk = nextRkey()
      const writes = i % 3 === 0 ? [create(rk)] : i % 3 === 1 ? [create(rk), update(rks[rks.length - 1])] : [del(rks[0]), create(rk)]
      if (i % 3 === 2) rks.shift()
      rks.push(rk)
      const b = await buildCommit(repo, kp, writes, { seq: i + 1 })
      frames.push(b.frame)
      repo = b.repo
    }
    const commitBytes = (await repo.storage.getBytes(repo.cid))!
    const car = writeCar([toCID(repo.cid)], [{ cid: toCID(repo.cid), bytes: commitBytes }])
    frames.push(encodeFrame('#sync', { seq: 99, did: repo.did, rev: repo.commit.rev, blocks: car, time: new Date().toISOString() }))
  }
  frames.push(encodeFrame('#identity', { seq: 5, did: 'did:plc:abc', time: new Date().toISOString(), handle: 'a.test' }))
  frames.push(encodeFrame('#account', { seq: 6, did: 'did:plc:abc', time: new Date().toISOString(), active: false, status: 'deleted' }))

  const outcomes: Record<string, number> = {}
  const count = (k: string) => (outcomes[k] = (outcomes[k] ?? 0) + 1)
  for (let i = 0; i < ITERATIONS; i++) {
    const src = frames[rnd(frames.length)]
    let m: Uint8Array
    const kind = rnd(4)
    if (kind === 0) {
      m = src.slice()
      const flips = 1 + rnd(4)
      for (let f = 0; f < flips; f++) m[rnd(m.length)] ^= 1 << rnd(8)
    } else if (kind === 1) {
      m = src.subarray(0, rnd(src.length))
    } else if (kind === 2) {
      const other = frames[rnd(frames.length)]
      const a = rnd(src.length)
      const b = rnd(other.length)
      m = Uint8Array.from([...src.subarray(0, a), ...other.subarray(b, b + rnd(64))])
    } else {
      m = src.slice()
      const at = rnd(m.length)
      m[at] = [0x00, 0x17, 0x18, 0x1b, 0x5f, 0x7f, 0x9f, 0xbf, 0xff, 0xf6, 0xd8][rnd(11)]
    }
    const d = decodeEvent(m)
    if (d.kind !== 'event') {
      count(d.kind === 'drop' ? `drop:${d.reason}` : d.kind)
      continue
    }
    const v = verifiers[rnd(2)]
    if (d.event.type === '#commit') {
      const r = validateCommit(d.event, null, v, { nowMs: Date.now() })
      count(r.ok ? 'commit:ok' : `commit:${r.reason}`)
      if (r.ok) spliceSeq(r.frame, r.seqOffset, i)
    } else if (d.event.type === '#sync') {
      const r = validateSync(d.event, null, v, { nowMs: Date.now() })
      count(r.ok ? 'sync:ok' : `sync:${r.reason}`)
    } else count(`event:${d.event.type}`)
  }
  // sanity: the run exercised deep paths, not just decode errors
  assert.ok((outcomes['commit:ok'] ?? 0) > 0)
  assert.ok((outcomes['drop:decode'] ?? 0) > 0)
  console.log(outcomes)
})
