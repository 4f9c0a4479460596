// Our MST / inversion agrees with @atproto/repo on randomly generated repos and commits.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { MST, MemoryBlockstore, readCarWithRoot, def } from '@atproto/repo'
import { makeKeypair, createRepo, buildCommit, create, update, del, nextRkey } from './helpers.ts'
import { Mst } from '../../../src/validator/mst.ts'
import { decodeEvent, validateCommit } from '../../../src/validator/validate.ts'
import { verifierFromDidKey } from '../../../src/validator/keys.ts'
import { bytesEqual } from '../../../src/validator/bytes.ts'

// deterministic PRNG so failures reproduce
let seed = 12345
const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff
const leafCid = (await MST.create(new MemoryBlockstore())).getPointer()

test('random trees: same root CID as @atproto/repo after adds and deletes', async () => {
  const value = await leafCid
  for (let round = 0; round < 8; round++) {
    let theirs = await MST.create(new MemoryBlockstore())
    const ours = Mst.empty()
    const keys: string[] = []
    const n = 20 + Math.floor(rand() * 200)
    for (let i = 0; i < n; i++) {
      const k = `com.example.c${Math.floor(rand() * 3)}/${Math.floor(rand() * 1e12).toString(36)}`
      if (keys.includes(k)) continue
      keys.push(k)
      theirs = await theirs.add(k, value)
      ours.add(k, value.bytes as never)
    }
    for (let i = 0; i < n / 3; i++) {
      const k = keys.splice(Math.floor(rand() * keys.length), 1)[0]
      theirs = await theirs.delete(k)
      ours.delete(k)
    }
    assert.ok(bytesEqual(ours.rootCid(), (await theirs.getPointer()).bytes), `round ${round}`)
  }
})

test('random commits: validator verdict agrees with @atproto/repo inversion', async () => {
  const kp = await makeKeypair('k256')
  const verifier = verifierFromDidKey(kp.did())!
  let repo = await createRepo(kp, 'did:plc:agreement00000000000000000', 30)
  const live: string[] = []
  for (const e of await repo.data.list()) live.push(e.key.split('/')[1])
  let agreeOk = 0
  let agreeBad = 0
  for (let i = 0; i < 25; i++) {
    const writes = []
    const used = new Set<string>()
    const nOps = 1 + Math.floor(rand() * 4)
    for (let j = 0; j < nOps; j++) {
      const r = rand()
      if (r < 0.5 || live.length < 5) {
        const rk = nextRkey()
        writes.push(create(rk))
        used.add(rk)
      } else {
        const rk = live[Math.floor(rand() * live.length)]
        if (used.has(rk)) continue
        used.add(rk)
        writes.push(r < 0.75 ? update(rk) : del(rk))
      }
    }
    const built = await buildCommit(repo, kp, writes)
    const d = decodeEvent(built.frame)
    assert.ok(d.kind === 'event' && d.event.type === '#commit')
    // variant: drop the last op when there are several (should be detected by both)
    const variants = [d.event.ops]
    if (d.event.ops.length > 1) variants.push(d.event.ops.slice(0, -1))
    for (const ops of variants) {
      const ours = validateCommit({ ...d.event, ops }, null, verifier, { nowMs: Date.now() })
      const theirs = await atprotoInvert(built.body.blocks as Uint8Array, ops, built.body.prevData as { bytes: Uint8Array })
      assert.equal(ours.ok, theirs, `commit ${i} ops ${ops.length}: ${!ours.ok && ours.detail}`)
      if (theirs) agreeOk++
      else agreeBad++
    }
    repo = built.repo
    for (const w of writes) {
      if (w.action === 'create') live.push(w.rkey)
      if (w.action === 'delete') live.splice(live.indexOf(w.rkey), 1)
    }
  }
  assert.ok(agreeOk >= 25 && agreeBad >= 1)
})

async function atprotoInvert(
  blocks: Uint8Array,
  ops: { action: string; path: string; cid: Uint8Array | null; prev?: Uint8Array }[],
  prevData: { bytes: Uint8Array },
): Promise<boolean> {
  const { CID } = await import('multiformats/cid')
  try {
    const car = await readCarWithRoot(blocks)
    const bs = new MemoryBlockstore(car.blocks)
    const commit = await bs.readObj(car.root, def.commit)
    let mst = MST.load(bs, commit.data)
    for (const op of ops) {
      const cur = await mst.get(op.path)
      if (op.action === 'create') {
        if (!cur || !bytesEqual(cur.bytes, op.cid!)) return false
        mst = await mst.delete(op.path)
      } else if (op.action === 'update') {
        if (!cur || !bytesEqual(cur.bytes, op.cid!)) return false
        mst = await mst.update(op.path, CID.decode(op.prev!) as never)
      } else {
        if (cur !== null) return false
        mst = await mst.add(op.path, CID.decode(op.prev!) as never)
      }
    }
    return bytesEqual((await mst.getPointer()).bytes, prevData.bytes)
  } catch {
    return false
  }
}
