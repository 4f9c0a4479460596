// Real signed upstream events for tests that run the whole pipeline: did:plc identities served by
// a loopback stand-in for the PLC directory (GET /<did> → DID document, with per-DID delays and
// request counts a test can use to slow one account's resolution), and repos built and signed
// with @atproto/repo (through the validator unit-test helpers), so every commit passes the
// relay's checks and those of @atproto/sync's Firehose.

import { randomBytes } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { WriteOpAction, type Repo, type RecordWriteOp } from '@atproto/repo'
import type { Keypair } from '@atproto/crypto'
import { buildCommit, createRepo, encodeFrame, makeKeypair, nextRkey, record, type Curve } from '../unit/validator/helpers.ts'

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567'

export function randomPlcDid(): string {
  const b = randomBytes(24)
  let s = ''
  for (const x of b) s += BASE32[x & 31]
  return `did:plc:${s}`
}

/** A loopback PLC directory: only `GET /<did>`, answering the DID documents registered here. */
export class DidServer {
  readonly docs = new Map<string, Record<string, unknown>>()
  /** per-DID answer delay in ms (to hold one account's resolution in a validation worker) */
  readonly delays = new Map<string, number>()
  /** GET /<did> count per DID */
  readonly requests = new Map<string, number>()
  port = 0
  private server: http.Server

  private constructor() {
    this.server = http.createServer((req, res) => {
      const did = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname.slice(1))
      this.requests.set(did, (this.requests.get(did) ?? 0) + 1)
      const answer = () => {
        const doc = this.docs.get(did)
        res.writeHead(doc ? 200 : 404, { 'content-type': 'application/json' })
        res.end(JSON.stringify(doc ?? { message: `DID not registered: ${did}` }))
      }
      const delay = this.delays.get(did) ?? 0
      if (delay > 0) setTimeout(answer, delay).unref()
      else answer()
    })
  }

  /**
   * How long an idle keep-alive connection stays open (Node's default is 5 s). Long by default;
   * a test about connections the directory closes sets it short.
   */
  set keepAliveTimeoutMs(ms: number) {
    this.server.keepAliveTimeout = ms
  }

  static async start(): Promise<DidServer> {
    const s = new DidServer()
    s.keepAliveTimeoutMs = 120_000
    await new Promise<void>((resolve) => s.server.listen(0, '127.0.0.1', resolve))
    s.port = (s.server.address() as AddressInfo).port
    return s
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  /** Registers the DID with `signingKey` (a did:key) as its #atproto key and `pdsUrl` as its PDS. */
  register(did: string, signingKey: string, pdsUrl: string): void {
    this.docs.set(did, {
      '@context': ['https://www.w3.org/ns/did/v1', 'https://w3id.org/security/multikey/v1'],
      id: did,
      alsoKnownAs: [],
      verificationMethod: [
        { id: `${did}#atproto`, type: 'Multikey', controller: did, publicKeyMultibase: signingKey.slice('did:key:'.length) },
      ],
      service: [{ id: '#atproto_pds', type: 'AtprotoPersonalDataServer', serviceEndpoint: pdsUrl }],
    })
  }

  async close(): Promise<void> {
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}

export interface SignedAccount {
  did: string
  key: Keypair & { did(): string }
  repo: Repo
  /** revs of the commits built so far, in order */
  revs: string[]
}

/**
 * A did:plc (or the given DID) registered in `dids` as hosted at `pdsUrl`, with an empty repo whose
 * genesis commit is never sent (the relay joins a host that has been running).
 */
export async function createSignedAccount(
  dids: DidServer,
  pdsUrl: string,
  opts: { curve?: Curve; did?: string } = {},
): Promise<SignedAccount> {
  const key = await makeKeypair(opts.curve ?? 'k256')
  const did = opts.did ?? randomPlcDid()
  dids.register(did, key.did(), pdsUrl)
  return { did, key, repo: await createRepo(key, did), revs: [] }
}

/** A create of a post, or of a `com.example.blob` record carrying `padBytes` of filler. */
export function createOp(opts: { padBytes?: number; text?: string } = {}): RecordWriteOp {
  if (opts.padBytes && opts.padBytes > 0) {
    return {
      action: WriteOpAction.Create,
      collection: 'com.example.blob',
      rkey: nextRkey(),
      record: { $type: 'com.example.blob', data: 'x'.repeat(opts.padBytes), createdAt: new Date().toISOString() },
    }
  }
  return { action: WriteOpAction.Create, collection: 'app.bsky.feed.post', rkey: nextRkey(), record: record(opts.text ?? 'hello') }
}

export interface BuiltFrame {
  seq: number
  did: string
  kind: 'commit' | 'identity' | 'account'
  /** the commit's rev (commits only) */
  rev?: string
  frame: Uint8Array
}

/** The account's next commit (one create), carrying upstream `seq`; the repo advances. */
export async function commitFrame(a: SignedAccount, seq: number, opts: { padBytes?: number; text?: string } = {}): Promise<BuiltFrame> {
  // Building a commit in memory never leaves the microtask queue: yield to I/O first, or a long
  // build would starve the servers of this process (the DID server the relay is resolving from).
  await new Promise((r) => setImmediate(r))
  const c = await buildCommit(a.repo, a.key, [createOp(opts)], { seq })
  a.repo = c.repo
  const rev = c.body.rev as string
  a.revs.push(rev)
  return { seq, did: a.did, kind: 'commit', rev, frame: c.frame }
}

export function identityEventFrame(a: { did: string }, seq: number): BuiltFrame {
  return { seq, did: a.did, kind: 'identity', frame: encodeFrame('#identity', { seq, did: a.did, time: new Date().toISOString() }) }
}

export function accountEventFrame(a: { did: string }, seq: number, active = true): BuiltFrame {
  return { seq, did: a.did, kind: 'account', frame: encodeFrame('#account', { seq, did: a.did, time: new Date().toISOString(), active }) }
}

/**
 * Builds `n` upstream events with consecutive seqs from `firstSeq`, round-robin over the
 * accounts: mostly commits, with an #identity every `identityEvery` events and an #account
 * (active) every `accountEvery` events (0 = never).
 */
export async function buildEvents(
  accounts: SignedAccount[],
  firstSeq: number,
  n: number,
  opts: { padBytes?: number; identityEvery?: number; accountEvery?: number } = {},
): Promise<BuiltFrame[]> {
  const out: BuiltFrame[] = []
  for (let i = 0; i < n; i++) {
    const seq = firstSeq + i
    const a = accounts[i % accounts.length]!
    if (opts.identityEvery && i % opts.identityEvery === opts.identityEvery - 1) out.push(identityEventFrame(a, seq))
    else if (opts.accountEvery && i % opts.accountEvery === opts.accountEvery - 1) out.push(accountEventFrame(a, seq, true))
    else out.push(await commitFrame(a, seq, { padBytes: opts.padBytes }))
  }
  return out
}
