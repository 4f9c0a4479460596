// The TypeScript reference path on the same frames: what @atproto/sync's Firehose does per
// message with a warm key cache — @atproto/xrpc-server Frame.fromBytes, the subscribeRepos
// lexicon check, then parseCommitAuthenticated (verifyProofs: CAR + CID checks, signature with
// @atproto/crypto, MST inclusion proofs). Note it does less than the relay: no MST inversion, no
// rev / chain checks. Single thread. Also the relay's own pure validator on the same frames, single
// thread, for the per-core comparison.
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import { Frame } from '@atproto/xrpc-server'
import { parseCommitAuthenticated } from '@atproto/sync'
import { decodeEvent, validateCommit } from '../../src/validator/validate.ts'
import { verifierFromDidKey, type Verifier } from '../../src/validator/keys.ts'
import type { StoredRepoState } from '../../src/validator/rules.ts'
import { loadHostFrames, KIND_COMMIT, type Fleet } from './fleet.ts'

export interface ReferenceResult {
  commits: number
  meanFrameBytes: number
  atprotoSyncPerSec: number
  relayValidatorPerSec: number
}

async function lexicons(): Promise<{ safeParse(v: unknown): { success: boolean } }> {
  // not in the package's exports map: load the file the Firehose itself uses
  const req = createRequire(import.meta.url)
  const main = req.resolve('@atproto/sync').replace(/index\.js$/, 'lexicons/index.js')
  const mod = (await import(pathToFileURL(main).href)) as {
    com: { atproto: { sync: { subscribeRepos: { $message: { safeParse(v: unknown): { success: boolean } } } } } }
  }
  return mod.com.atproto.sync.subscribeRepos.$message
}

/** Sample `limit` consecutive non-first commits per host from the first hosts, in stream order. */
function sampleFrames(f: Fleet, limit: number): Array<{ frame: Buffer; did: string }> {
  const hosts = loadHostFrames(f, (h) => h < 4)
  const out: Array<{ frame: Buffer; did: string }> = []
  for (const hf of hosts) {
    for (let i = hf.warm; i < hf.frames.length && out.length < limit; i++) {
      if (hf.kinds[i] !== KIND_COMMIT) continue
      out.push({ frame: Buffer.from(hf.frames[i]), did: '' })
    }
  }
  return out
}

export async function measureReference(f: Fleet, seconds = 4, limit = 3000): Promise<ReferenceResult> {
  const frames = sampleFrames(f, limit)
  const keyOf = new Map(f.meta.accounts.map((a) => [a.did, a.didKey]))
  const idResolver = { did: { resolveAtprotoKey: async (did: string) => keyOf.get(did)! } }
  const message = await lexicons()
  const method = 'com.atproto.sync.subscribeRepos'

  // warm-up + correctness: every sampled commit must verify on the reference path
  for (const { frame } of frames.slice(0, 50)) {
    const m = Frame.fromBytes(frame) as unknown as { header: { t: string }; body: Record<string, unknown> }
    const body = { ...m.body, $type: method + m.header.t }
    if (!message.safeParse(body).success) throw new Error('reference: lexicon rejected a generated frame')
    const ops = await parseCommitAuthenticated(idResolver as never, body as never, null)
    if (ops.length !== (m.body.ops as unknown[]).length)
      throw new Error(`reference: ${ops.length} of ${(m.body.ops as unknown[]).length} ops verified`)
  }
  let n = 0
  let t0 = performance.now()
  const deadline = t0 + seconds * 1000
  while (performance.now() < deadline) {
    const { frame } = frames[n % frames.length]
    const m = Frame.fromBytes(frame) as unknown as { header: { t: string }; body: Record<string, unknown> }
    const body = { ...m.body, $type: method + m.header.t }
    if (!message.safeParse(body).success) throw new Error('lexicon')
    await parseCommitAuthenticated(idResolver as never, body as never, null)
    n++
  }
  const atprotoSyncPerSec = n / ((performance.now() - t0) / 1000)

  // relay's pure validator, single thread; chain state is not carried (stored = null) so repeats pass
  const verifiers = new Map<string, Verifier>()
  const nowMs = Date.now()
  n = 0
  t0 = performance.now()
  const deadline2 = t0 + seconds * 1000
  while (performance.now() < deadline2) {
    const { frame } = frames[n % frames.length]
    const d = decodeEvent(frame)
    if (d.kind !== 'event' || d.event.type !== '#commit') throw new Error('decode')
    let v = verifiers.get(d.event.repo)
    if (!v) verifiers.set(d.event.repo, (v = verifierFromDidKey(keyOf.get(d.event.repo)!)!))
    const stored: StoredRepoState | null = null
    const r = validateCommit(d.event, stored, v, { nowMs })
    if (!r.ok) throw new Error(`validator: ${r.reason} ${r.detail}`)
    n++
  }
  const relayValidatorPerSec = n / ((performance.now() - t0) / 1000)
  return {
    commits: frames.length,
    meanFrameBytes: Math.round(frames.reduce((a, x) => a + x.frame.length, 0) / frames.length),
    atprotoSyncPerSec,
    relayValidatorPerSec,
  }
}
