import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { fromString } from '@atcute/cid'
import { Mst, keyHeight } from '../../../src/validator/mst.ts'
import { invertOps, normalizeOps } from '../../../src/validator/invert.ts'
import { bytesKey } from '../../../src/validator/bytes.ts'
import { cidToString } from '../../../src/validator/cid.ts'
import type { BlockMap } from '../../../src/validator/car.ts'

const FIX = new URL('../../fixtures/atproto-interop-tests/', import.meta.url)
const cid = (s: string) => fromString(s).bytes

test('key heights match interop fixture', () => {
  const cases = JSON.parse(readFileSync(new URL('mst/key_heights.json', FIX), 'utf8')) as { key: string; height: number }[]
  for (const c of cases) assert.equal(keyHeight(c.key), c.height, c.key)
})

interface ProofFixture {
  comment: string
  leafValue: string
  keys: string[]
  adds: string[]
  dels: string[]
  rootBeforeCommit: string
  rootAfterCommit: string
  blocksInProof: string[]
}

const proofs = JSON.parse(readFileSync(new URL('firehose/commit-proof-fixtures.json', FIX), 'utf8')) as ProofFixture[]
for (const f of proofs) {
  test(`commit proof: ${f.comment}`, () => {
    const leaf = cid(f.leafValue)
    const all: BlockMap = new Map()
    const before = Mst.empty()
    for (const k of f.keys) before.add(k, leaf)
    assert.equal(cidToString(before.rootCid(all)), f.rootBeforeCommit)
    // apply the commit on a tree loaded from the blocks of the "before" tree
    const after = Mst.load(all, before.rootCid())
    for (const k of f.adds) after.add(k, leaf)
    for (const k of f.dels) after.delete(k)
    assert.equal(cidToString(after.rootCid(all)), f.rootAfterCommit)
    // invert from exactly the proof blocks
    const proof: BlockMap = new Map()
    for (const c of f.blocksInProof) {
      const b = all.get(bytesKey(cid(c)))
      assert.ok(b, `proof block ${c} known`)
      proof.set(bytesKey(cid(c)), b)
    }
    const ops = normalizeOps([
      ...f.adds.map((path) => ({ action: 'create' as const, path, cid: leaf, prev: undefined })),
      ...f.dels.map((path) => ({ action: 'delete' as const, path, cid: null, prev: leaf })),
    ])
    assert.ok(Array.isArray(ops))
    const res = invertOps(proof, cid(f.rootAfterCommit), ops, cid(f.rootBeforeCommit))
    assert.deepEqual(res, { ok: true })
    // reversed op order gives the same result
    const res2 = invertOps(proof, cid(f.rootAfterCommit), [...ops].reverse(), cid(f.rootBeforeCommit))
    assert.deepEqual(res2, { ok: true })
    // without the proof blocks nothing can be inverted
    assert.equal(invertOps(new Map(), cid(f.rootAfterCommit), ops, cid(f.rootBeforeCommit)).ok, false)
  })
}
