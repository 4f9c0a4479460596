import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import { sha256 as mfSha256 } from 'multiformats/hashes/sha2'
import { BlockMap } from '@atproto/repo'
import {
  makeKeypair,
  createRepo,
  buildCommit,
  create,
  update,
  del,
  nextRkey,
  encodeFrame,
  writeCar,
  blockList,
  toCID,
  type Curve,
} from './helpers.ts'
import { decodeEvent, validateCommit, validateSync, completeSignature, type ValidationResult } from '../../../src/validator/validate.ts'
import { verifierFromDidKey } from '../../../src/validator/keys.ts'
import type { CommitEvent, SyncEvent } from '../../../src/validator/schema.ts'
import type { StoredRepoState } from '../../../src/validator/rules.ts'
import { bytesEqual } from '../../../src/validator/bytes.ts'

const DID = 'did:plc:validatortest00000000000'
const now = () => Date.now()

function commitEvent(frame: Uint8Array): CommitEvent {
  const d = decodeEvent(frame)
  assert.equal(d.kind, 'event', JSON.stringify(d))
  assert.ok(d.kind === 'event' && d.event.type === '#commit')
  return d.event
}

function expectReason(r: ValidationResult, reason: string): void {
  assert.equal(r.ok, false, 'expected rejection')
  if (!r.ok) assert.equal(r.reason, reason, r.detail)
}

async function cidOf(bytes: Uint8Array): Promise<CID> {
  return CID.create(1, 0x71, await mfSha256.digest(bytes))
}

/** Rebuild `blocks` with a mutated commit object (re-hashed), keeping other blocks. */
async function withCommit(
  body: Record<string, unknown>,
  blocks: BlockMap,
  mutate: (c: Record<string, unknown>) => void,
): Promise<Record<string, unknown>> {
  const commitCid = body.commit as CID
  const list = blockList(blocks)
  const idx = list.findIndex((b) => b.cid.equals(commitCid))
  const commitObj = dagCbor.decode(list[idx].bytes) as Record<string, unknown>
  mutate(commitObj)
  const bytes = dagCbor.encode(commitObj)
  const cid = await cidOf(bytes)
  list[idx] = { cid, bytes }
  return { ...body, commit: cid, blocks: writeCar([cid], list) }
}

for (const curve of ['k256', 'p256'] as Curve[]) {
  describe(`validateCommit (${curve})`, async () => {
    const kp = await makeKeypair(curve)
    const verifier = verifierFromDidKey(kp.did())!
    const otherKp = await makeKeypair(curve)
    const otherVerifier = verifierFromDidKey(otherKp.did())!

    async function chain(writesFor: (rkeys: string[]) => Parameters<typeof buildCommit>[2], initial = 4) {
      const repo = await createRepo(kp, DID, 0)
      const rkeys: string[] = []
      const initWrites = []
      for (let i = 0; i < initial; i++) {
        const rk = nextRkey()
        rkeys.push(rk)
        initWrites.push(create(rk))
      }
      const first = await buildCommit(repo, kp, initWrites)
      const stored: StoredRepoState = { rev: first.repo.commit.rev, dataCid: (await first.repo.data.getPointer()).bytes }
      const built = await buildCommit(first.repo, kp, writesFor(rkeys))
      return { built, stored, evt: commitEvent(built.frame) }
    }

    test('create / update / delete / multi-op are accepted with continuous chain', async () => {
      const cases: [string, (rk: string[]) => ReturnType<typeof create>[]][] = [
        ['create', () => [create()]],
        ['update', (rk) => [update(rk[1])]],
        ['delete', (rk) => [del(rk[2])]],
        ['multi', (rk) => [create(), update(rk[0]), del(rk[3]), create()]],
      ]
      for (const [name, w] of cases) {
        const { built, stored, evt } = await chain(w)
        const r = validateCommit(evt, stored, verifier, { nowMs: now(), strict: true })
        assert.ok(r.ok, `${name}: ${!r.ok && r.reason + ' ' + r.detail}`)
        assert.equal(r.chainBreak, false)
        assert.equal(r.legacyNoPrevData, false)
        assert.equal(r.state.rev, built.repo.commit.rev)
        assert.ok(bytesEqual(r.state.commitCid, built.repo.cid.bytes))
        assert.ok(bytesEqual(r.state.dataCid, (await built.repo.data.getPointer()).bytes))
      }
    })

    test('first commit without prevData and no stored state is accepted', async () => {
      const repo = await createRepo(kp, DID, 0)
      const built = await buildCommit(repo, kp, [create(), create()], { includePrevData: false })
      const evt = commitEvent(built.frame)
      const r = validateCommit(evt, null, verifier, { nowMs: now() })
      assert.ok(r.ok)
      assert.equal(r.legacyNoPrevData, false)
      // with stored state it is legacy: flagged, or rejected in strict mode
      const stored = { rev: repo.commit.rev, dataCid: (await repo.data.getPointer()).bytes }
      const r2 = validateCommit(evt, stored, verifier, { nowMs: now() })
      assert.ok(r2.ok && r2.legacyNoPrevData)
      expectReason(validateCommit(evt, stored, verifier, { nowMs: now(), strict: true }), 'inversion')
    })

    test('self-contained inversion without stored state', async () => {
      const { evt } = await chain(() => [create()])
      const r = validateCommit(evt, null, verifier, { nowMs: now() })
      assert.ok(r.ok)
      assert.equal(r.chainBreak, false)
    })

    test('chain break: flagged, or rejected in strict mode', async () => {
      const { evt, stored } = await chain(() => [create()])
      const other = { rev: '2222222222222', dataCid: stored.dataCid }
      const r = validateCommit(evt, other, verifier, { nowMs: now() })
      assert.ok(r.ok && r.chainBreak)
      expectReason(validateCommit(evt, other, verifier, { nowMs: now(), strict: true }), 'chain_break')
      const otherData = { rev: stored.rev, dataCid: evt.commit }
      const r3 = validateCommit(evt, otherData, verifier, { nowMs: now() })
      assert.ok(r3.ok && r3.chainBreak)
    })

    test('signature: wrong key, then retry with the right key', async () => {
      const { evt, stored } = await chain(() => [create()])
      const r = validateCommit(evt, stored, otherVerifier, { nowMs: now() })
      expectReason(r, 'signature')
      assert.ok(!r.ok && r.reason === 'signature')
      const r2 = completeSignature(r.pending, verifier)
      assert.ok(r2.ok)
      const r3 = validateCommit(evt, stored, null, { nowMs: now() })
      expectReason(r3, 'signature')
    })

    test('signature: corrupted sig bytes and high-S variant are rejected', async () => {
      const { built, stored } = await chain(() => [create()])
      const flipped = await withCommit(built.body, built.blocks, (c) => {
        const s = new Uint8Array(c.sig as Uint8Array)
        s[5] ^= 1
        c.sig = s
      })
      expectReason(validateCommit(commitEvent(encodeFrame('#commit', flipped)), stored, verifier, { nowMs: now() }), 'signature')
      const N =
        curve === 'k256'
          ? 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
          : 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n
      const highS = await withCommit(built.body, built.blocks, (c) => {
        const sig = c.sig as Uint8Array
        const s = BigInt('0x' + Buffer.from(sig.subarray(32)).toString('hex'))
        const hs = Buffer.from((N - s).toString(16).padStart(64, '0'), 'hex')
        const out = new Uint8Array(64)
        out.set(sig.subarray(0, 32), 0)
        out.set(hs, 32)
        c.sig = out
      })
      expectReason(validateCommit(commitEvent(encodeFrame('#commit', highS)), stored, verifier, { nowMs: now() }), 'signature')
    })

    test('rev rules: stale, future, mismatch', async () => {
      const { built, evt, stored } = await chain(() => [create()])
      expectReason(validateCommit(evt, { ...stored, rev: evt.rev }, verifier, { nowMs: now() }), 'rev_stale')
      expectReason(validateCommit(evt, { ...stored, rev: 'zzzzzzzzzzzzz'.replace(/^z/, 'j') }, verifier, { nowMs: now() }), 'rev_stale')
      expectReason(validateCommit(evt, stored, verifier, { nowMs: now() - 10 * 60_000 }), 'rev_future')
      const r = validateCommit(evt, stored, verifier, { nowMs: now() - 4 * 60_000 })
      assert.ok(r.ok, 'within 5 minutes tolerance')
      const tampered = commitEvent(encodeFrame('#commit', { ...built.body, rev: stored.rev.slice(0, 12) + 'z' }))
      expectReason(validateCommit(tampered, null, verifier, { nowMs: now() }), 'mismatch')
    })

    test('repo and commit CID tampering', async () => {
      const { built, stored } = await chain(() => [create()])
      const badRepo = commitEvent(encodeFrame('#commit', { ...built.body, repo: 'did:plc:someoneelse000000000000' }))
      expectReason(validateCommit(badRepo, stored, verifier, { nowMs: now() }), 'mismatch')
      const badCommit = commitEvent(encodeFrame('#commit', { ...built.body, commit: built.body.prevData }))
      expectReason(validateCommit(badCommit, stored, verifier, { nowMs: now() }), 'mismatch')
    })

    test('ops tampering: cid, prev, dropped op, extra op, duplicate path', async () => {
      const { built, stored } = await chain((rk) => [create(), update(rk[0]), del(rk[1])])
      const ops = built.body.ops as Record<string, unknown>[]
      const other = toCID({ bytes: (built.body.prevData as CID).bytes })
      const v = (o: Record<string, unknown>[]) =>
        validateCommit(commitEvent(encodeFrame('#commit', { ...built.body, ops: o })), stored, verifier, { nowMs: now() })
      expectReason(v([{ ...ops[0], cid: ops[1].cid }, ops[1], ops[2]]), 'inversion')
      expectReason(v([ops[0], { ...ops[1], prev: other }, ops[2]]), 'inversion')
      expectReason(v([ops[0], ops[1], { ...ops[2], prev: other }]), 'inversion')
      expectReason(v([ops[0], ops[2]]), 'inversion')
      expectReason(v([ops[0], ops[1]]), 'inversion')
      expectReason(v([...ops, { action: 'create', path: 'app.bsky.feed.post/3zzzzzzzzzzzz', cid: ops[0].cid }]), 'inversion')
      expectReason(v([...ops, ops[0]]), 'structure')
      expectReason(v([{ ...ops[0], prev: other }, ops[1], ops[2]]), 'structure')
      expectReason(v([ops[0], ops[1], { ...ops[2], cid: ops[0].cid }]), 'structure')
      assert.ok(v(ops).ok)
      assert.ok(v([ops[2], ops[0], ops[1]]).ok, 'op order does not matter')
    })

    test('missing MST block → inversion, missing record block → record', async () => {
      const { built, stored } = await chain(() => [create()], 40)
      const list = blockList(built.blocks)
      const commitCid = built.body.commit as CID
      const recordCid = (built.body.ops as { cid: CID }[])[0].cid
      const mstBlocks = list.filter((b) => !b.cid.equals(commitCid) && !b.cid.equals(recordCid))
      assert.ok(mstBlocks.length >= 1)
      // covering proofs may carry neighbour blocks that inversion does not need; the data root is
      // always needed, and any missing block that is needed is reported as an inversion failure
      const dataCid = (dagCbor.decode(list.find((b) => b.cid.equals(commitCid))!.bytes) as { data: CID }).data
      let rootDropped = false
      for (const drop of mstBlocks) {
        const car = writeCar(
          [commitCid],
          list.filter((b) => b !== drop),
        )
        const r = validateCommit(commitEvent(encodeFrame('#commit', { ...built.body, blocks: car })), stored, verifier, { nowMs: now() })
        if (drop.cid.equals(dataCid)) {
          expectReason(r, 'inversion')
          rootDropped = true
        } else if (!r.ok) expectReason(r, 'inversion')
      }
      assert.ok(rootDropped)
      const noRecord = writeCar(
        [commitCid],
        list.filter((b) => !b.cid.equals(recordCid)),
      )
      expectReason(
        validateCommit(commitEvent(encodeFrame('#commit', { ...built.body, blocks: noRecord })), stored, verifier, { nowMs: now() }),
        'record',
      )
      // a block whose bytes do not match its CID
      const corrupt = list.map((b) =>
        b.cid.equals(recordCid) ? { cid: b.cid, bytes: Uint8Array.from([...b.bytes.subarray(0, -1), b.bytes[b.bytes.length - 1] ^ 1]) } : b,
      )
      expectReason(
        validateCommit(commitEvent(encodeFrame('#commit', { ...built.body, blocks: writeCar([commitCid], corrupt) })), stored, verifier, {
          nowMs: now(),
        }),
        'decode',
      )
      // extra CAR roots are fine; a different first root is not
      const extraRoot = writeCar([commitCid, recordCid], list)
      assert.ok(
        validateCommit(commitEvent(encodeFrame('#commit', { ...built.body, blocks: extraRoot })), stored, verifier, { nowMs: now() }).ok,
      )
      const wrongRoot = writeCar([recordCid, commitCid], list)
      expectReason(
        validateCommit(commitEvent(encodeFrame('#commit', { ...built.body, blocks: wrongRoot })), stored, verifier, { nowMs: now() }),
        'mismatch',
      )
    })

    test('size limits and tooBig', async () => {
      const { built, stored, evt } = await chain(() => [create()])
      expectReason(validateCommit({ ...evt, blocks: new Uint8Array(2_000_001) }, stored, verifier, { nowMs: now() }), 'size')
      const manyOps = Array.from({ length: 201 }, () => evt.ops[0])
      expectReason(validateCommit({ ...evt, ops: manyOps }, stored, verifier, { nowMs: now() }), 'size')
      const d = decodeEvent(encodeFrame('#commit', { ...built.body, tooBig: true }))
      assert.equal(d.kind, 'drop')
      assert.ok(d.kind === 'drop' && d.reason === 'too_big')
      // deprecated fields absent → defaults
      const { tooBig: _a, rebase: _b, blobs: _c, ...rest } = built.body
      const lean = commitEvent(encodeFrame('#commit', rest))
      assert.equal(lean.tooBig, false)
      assert.ok(validateCommit(lean, stored, verifier, { nowMs: now() }).ok)
      // oversized record block
      const big = await buildCommit(built.repo, kp, [{ ...create(), record: { $type: 'x', text: 'a'.repeat(1_000_100) } } as never])
      const bigStored = { rev: built.repo.commit.rev, dataCid: (await built.repo.data.getPointer()).bytes }
      expectReason(validateCommit(commitEvent(big.frame), bigStored, verifier, { nowMs: now() }), 'record')
    })

    test('#sync: accepted, rollback dropped, equal rev passes, mismatch rejected', async () => {
      const repo = await createRepo(kp, DID, 3)
      const commitBytes = await repo.storage.getBytes(repo.cid)
      const car = writeCar([toCID(repo.cid)], [{ cid: toCID(repo.cid), bytes: commitBytes! }])
      const body = { seq: 9, did: DID, rev: repo.commit.rev, blocks: car, time: new Date().toISOString() }
      const d = decodeEvent(encodeFrame('#sync', body))
      assert.ok(d.kind === 'event' && d.event.type === '#sync')
      const evt = d.event as SyncEvent
      const r = validateSync(evt, null, verifier, { nowMs: now() })
      assert.ok(r.ok)
      assert.ok(bytesEqual(r.state.commitCid, repo.cid.bytes))
      assert.ok(validateSync(evt, { rev: evt.rev, dataCid: r.state.dataCid }, verifier, { nowMs: now() }).ok)
      expectReason(validateSync(evt, { rev: 'jzzzzzzzzzzzz', dataCid: r.state.dataCid }, verifier, { nowMs: now() }), 'rev_stale')
      expectReason(validateSync({ ...evt, did: 'did:plc:other' }, null, verifier, { nowMs: now() }), 'mismatch')
      expectReason(validateSync(evt, null, otherVerifier, { nowMs: now() }), 'signature')
      expectReason(validateSync({ ...evt, blocks: new Uint8Array(10_001) }, null, verifier, { nowMs: now() }), 'size')
    })
  })
}
