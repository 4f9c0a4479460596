// Loopback peers for the validation worker: a fake PLC directory (DID documents from a map, with
// per-DID hit counts and injectable failures), a fake PDS answering getRepoStatus, and builders for
// DID documents, #sync/#identity/#account frames and pool tasks.
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { createRequire } from 'node:module'
import { randomBytes } from 'node:crypto'
import { BlockMap, blocksToCarFile, type Repo } from '@atproto/repo'
import type { Keypair } from '@atproto/crypto'
import { base58Encode } from '../../../src/validator/base58.ts'
import { parseDidKey } from '../../../src/validator/keys.ts'
import type { FrameMeta } from '../../../src/pool/types.ts'
import type { ShardTask } from '../../../src/pool/sharded-pool.ts'
import { encodeFrame, toCID } from '../../unit/validator/helpers.ts'

const B32 = 'abcdefghijklmnopqrstuvwxyz234567'
export function randomPlcDid(): string {
  const b = randomBytes(24)
  let s = ''
  for (const x of b) s += B32[x & 31]
  return `did:plc:${s}`
}

export interface DocOptions {
  pds: string
  handle?: string
  /** legacy EcdsaSecp256k1VerificationKey2019 with an uncompressed key (what @did-plc/server serves) */
  legacy?: boolean
  absoluteIds?: boolean
}

/** A DID document for `keyDid` (did:key:…), in Multikey or legacy form. */
export function didDoc(did: string, keyDid: string, opts: DocOptions): Record<string, unknown> {
  const id = (frag: string) => (opts.absoluteIds ? `${did}#${frag}` : `#${frag}`)
  let vm: Record<string, unknown>
  if (opts.legacy) {
    const key = parseDidKey(keyDid)!
    if (key.curve !== 'k256') throw new Error('legacy helper only does k256')
    const secp = createRequire(import.meta.url)('secp256k1') as { publicKeyConvert(p: Uint8Array, c: boolean): Uint8Array }
    vm = {
      id: id('atproto'),
      type: 'EcdsaSecp256k1VerificationKey2019',
      controller: did,
      publicKeyMultibase: 'z' + base58Encode(secp.publicKeyConvert(key.compressed, false)),
    }
  } else {
    vm = { id: id('atproto'), type: 'Multikey', controller: did, publicKeyMultibase: keyDid.slice('did:key:'.length) }
  }
  return {
    '@context': ['https://www.w3.org/ns/did/v1', 'https://w3id.org/security/multikey/v1'],
    id: did,
    alsoKnownAs: opts.handle ? [`at://${opts.handle}`] : [],
    verificationMethod: [vm],
    service: [{ id: id('atproto_pds'), type: 'AtprotoPersonalDataServer', serviceEndpoint: opts.pds }],
  }
}

async function listen(server: http.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return (server.address() as AddressInfo).port
}

export class FakePlc {
  readonly docs = new Map<string, unknown>()
  /** per-DID forced HTTP status (e.g. 500, 410) */
  readonly failures = new Map<string, number>()
  readonly hits = new Map<string, number>()
  private server = http.createServer((req, res) => {
    const did = decodeURIComponent((req.url ?? '/').slice(1))
    this.hits.set(did, (this.hits.get(did) ?? 0) + 1)
    const fail = this.failures.get(did)
    const doc = this.docs.get(did)
    if (fail !== undefined || doc === undefined) {
      res.writeHead(fail ?? 404, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ message: 'DID not registered' }))
      return
    }
    res.writeHead(200, { 'content-type': 'application/did+ld+json' })
    res.end(JSON.stringify(doc))
  })
  url = ''

  async start(): Promise<this> {
    this.url = `http://127.0.0.1:${await listen(this.server)}`
    return this
  }

  hitCount(did: string): number {
    return this.hits.get(did) ?? 0
  }

  async close(): Promise<void> {
    this.server.closeAllConnections()
    await new Promise((r) => this.server.close(r))
  }
}

/** A PDS that only answers com.atproto.sync.getRepoStatus, from a map. */
export class FakePds {
  readonly statuses = new Map<string, { active: boolean; status?: string }>()
  calls = 0
  port = 0
  private server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x')
    if (u.pathname !== '/xrpc/com.atproto.sync.getRepoStatus') {
      res.writeHead(404).end()
      return
    }
    this.calls++
    const did = u.searchParams.get('did') ?? ''
    const s = this.statuses.get(did)
    if (!s) {
      res.writeHead(400, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: 'RepoNotFound', message: 'no such repo' }))
      return
    }
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ did, ...s }))
  })

  async start(): Promise<this> {
    this.port = await listen(this.server)
    return this
  }

  get hostname(): string {
    return `localhost:${this.port}`
  }

  async close(): Promise<void> {
    this.server.closeAllConnections()
    await new Promise((r) => this.server.close(r))
  }
}

/** #sync of the repo's current commit (blocks = the signed commit block only). */
export async function buildSync(repo: Repo, seq = 1): Promise<Uint8Array> {
  const bytes = await repo.storage.getBytes(repo.cid)
  if (!bytes) throw new Error('commit block missing')
  const blocks = new BlockMap()
  blocks.set(repo.cid, bytes)
  const car = await blocksToCarFile(repo.cid, blocks)
  return encodeFrame('#sync', { seq, did: repo.did, rev: repo.commit.rev, blocks: car, time: new Date().toISOString() })
}

export function identityFrame(did: string, handle?: string, seq = 1): Uint8Array {
  const body: Record<string, unknown> = { seq, did, time: new Date().toISOString() }
  if (handle !== undefined) body.handle = handle
  return encodeFrame('#identity', body)
}

export function accountFrame(did: string, active: boolean, status?: string, seq = 1): Uint8Array {
  const body: Record<string, unknown> = { seq, did, time: new Date().toISOString(), active }
  if (status !== undefined) body.status = status
  return encodeFrame('#account', body)
}

/** Pack frames like ShardedPool does. */
export function packTask(frames: Uint8Array[], metas: FrameMeta[]): ShardTask<FrameMeta> {
  const total = frames.reduce((a, f) => a + f.length, 0)
  const buffer = new ArrayBuffer(total)
  const view = new Uint8Array(buffer)
  const offsets = new Uint32Array(frames.length * 2)
  let at = 0
  frames.forEach((f, i) => {
    view.set(f, at)
    offsets[2 * i] = at
    at += f.length
    offsets[2 * i + 1] = at
  })
  return { buffer, offsets, metas }
}

export function meta(hostId: number, hostname: string, upstreamSeq = 1): FrameMeta {
  return { hostId, hostname, upstreamSeq, receivedAt: Date.now() }
}

export type { Keypair }
export { toCID }
