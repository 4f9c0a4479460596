// A real atproto network on loopback for end-to-end tests: an in-memory PLC directory
// (@did-plc/server) and real @atproto/pds instances, in this process.

import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { freePort } from './relay-process.ts'

const require = createRequire(import.meta.url)

export interface TestPds {
  port: number
  url: string
  /** what the relay calls this host */
  hostname: string
  adminAuth: string
  server: { destroy(): Promise<void>; ctx?: { sequencer: { curr(): Promise<number | null> } } }
  dir: string
  /** the PDS's PLC rotation key (it can sign PLC operations for its accounts) */
  rotationKey: { sign(msg: Uint8Array): Promise<Uint8Array>; did(): string }
}

export interface TestNetwork {
  plcUrl: string
  pds: TestPds[]
  close(): Promise<void>
}

export async function startNetwork(opts: { pdsCount: number; crawlers?: string[] }): Promise<TestNetwork> {
  const plc = require('@did-plc/server')
  const plcServer = plc.PlcServer.create({ db: plc.Database.mock(), port: 0 })
  const httpServer = await plcServer.start()
  const plcUrl = `http://localhost:${(httpServer.address() as AddressInfo).port}`
  const pdsList: TestPds[] = []
  try {
    for (let i = 0; i < opts.pdsCount; i++) pdsList.push(await startPds(plcUrl, opts.crawlers ?? []))
  } catch (err) {
    for (const p of pdsList) await p.server.destroy().catch(() => {})
    await plcServer.destroy()
    throw err
  }
  return {
    plcUrl,
    pds: pdsList,
    async close() {
      for (const p of pdsList) {
        await p.server.destroy().catch(() => {})
        rmSync(p.dir, { recursive: true, force: true })
      }
      await plcServer.destroy().catch(() => {})
    },
  }
}

async function startPds(plcUrl: string, crawlers: string[]): Promise<TestPds> {
  const pds = await import('@atproto/pds')
  const { Secp256k1Keypair } = await import('@atproto/crypto')
  const port = await freePort()
  const dir = mkdtempSync(path.join(tmpdir(), 'relay-e2e-pds-'))
  const rotation = await Secp256k1Keypair.create({ exportable: true })
  const env = {
    devMode: true,
    port,
    dataDirectory: dir,
    blobstoreDiskLocation: path.join(dir, 'blobs'),
    recoveryDidKey: (await Secp256k1Keypair.create()).did(),
    adminPassword: 'admin-pass',
    jwtSecret: 'jwt-secret',
    serviceHandleDomains: ['.test'],
    didPlcUrl: plcUrl,
    bskyAppViewUrl: 'https://appview.invalid',
    bskyAppViewDid: 'did:example:invalid',
    modServiceUrl: 'https://moderator.invalid',
    modServiceDid: 'did:example:invalid',
    plcRotationKeyK256PrivateKeyHex: Buffer.from(await rotation.export()).toString('hex'),
    inviteRequired: false,
    disableSsrfProtection: true,
    crawlers,
  }
  const server = await pds.PDS.create(pds.envToCfg(env as never), pds.envToSecrets(env as never))
  await server.start()
  return {
    port,
    url: `http://localhost:${port}`,
    hostname: `localhost:${port}`,
    adminAuth: 'Basic ' + Buffer.from('admin:admin-pass').toString('base64'),
    server,
    dir,
    rotationKey: rotation,
  }
}

/** Thin XRPC client over fetch for driving a PDS. */
export class PdsClient {
  readonly base: string
  constructor(base: string) {
    this.base = base
  }

  async call<T = any>(
    nsid: string,
    opts: { body?: unknown; query?: Record<string, string>; auth?: string; method?: 'GET' | 'POST' } = {},
  ): Promise<T> {
    const url = new URL(`/xrpc/${nsid}`, this.base)
    for (const [k, v] of Object.entries(opts.query ?? {})) url.searchParams.set(k, v)
    const method = opts.method ?? (opts.body !== undefined ? 'POST' : 'GET')
    const headers: Record<string, string> = {}
    if (opts.auth) headers.authorization = opts.auth
    if (opts.body !== undefined) headers['content-type'] = 'application/json'
    const res = await fetch(url, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) })
    const text = await res.text()
    if (!res.ok) throw new Error(`${nsid} → ${res.status} ${text}`)
    return (text ? JSON.parse(text) : undefined) as T
  }

  async createAccount(handle: string): Promise<{ did: string; accessJwt: string }> {
    return this.call('com.atproto.server.createAccount', { body: { email: `${handle}@example.test`, handle, password: 'password' } })
  }
}

/** The PDS's latest sequenced event (0 when none). */
export async function pdsSeq(p: TestPds): Promise<number> {
  const seq = await p.server.ctx?.sequencer.curr()
  return seq ?? 0
}

// ---- driving accounts -----------------------------------------------------------------------

export interface Account {
  did: string
  handle: string
  accessJwt: string
  /** the PDS currently hosting it */
  pds: TestPds
}

const bearer = (a: { accessJwt: string }) => `Bearer ${a.accessJwt}`

export function clientFor(p: TestPds): PdsClient {
  return new PdsClient(p.url)
}

export async function createAccount(p: TestPds, handle: string): Promise<Account> {
  const res = await clientFor(p).createAccount(handle)
  return { did: res.did, handle, accessJwt: res.accessJwt, pds: p }
}

export interface WriteResult {
  uri: string
  cid: string
  commit?: { cid: string; rev: string }
}

export function post(text: string) {
  return { $type: 'app.bsky.feed.post', text, createdAt: new Date().toISOString() }
}

export async function createRecord(a: Account, collection: string, record: unknown, rkey?: string): Promise<WriteResult> {
  return clientFor(a.pds).call('com.atproto.repo.createRecord', {
    auth: bearer(a),
    body: { repo: a.did, collection, record, ...(rkey ? { rkey } : {}) },
  })
}

export async function putRecord(a: Account, collection: string, rkey: string, record: unknown): Promise<WriteResult> {
  return clientFor(a.pds).call('com.atproto.repo.putRecord', { auth: bearer(a), body: { repo: a.did, collection, rkey, record } })
}

export async function deleteRecord(a: Account, collection: string, rkey: string): Promise<void> {
  await clientFor(a.pds).call('com.atproto.repo.deleteRecord', { auth: bearer(a), body: { repo: a.did, collection, rkey } })
}

export type ApplyWrite =
  | { $type: 'com.atproto.repo.applyWrites#create'; collection: string; rkey?: string; value: unknown }
  | { $type: 'com.atproto.repo.applyWrites#update'; collection: string; rkey: string; value: unknown }
  | { $type: 'com.atproto.repo.applyWrites#delete'; collection: string; rkey: string }

export async function applyWrites(a: Account, writes: ApplyWrite[]): Promise<unknown> {
  return clientFor(a.pds).call('com.atproto.repo.applyWrites', { auth: bearer(a), body: { repo: a.did, writes } })
}

export async function deactivateAccount(a: Account): Promise<void> {
  await clientFor(a.pds).call('com.atproto.server.deactivateAccount', { auth: bearer(a), body: {} })
}

/** activateAccount takes no body (a body is a 400). */
export async function activateAccount(a: Account): Promise<void> {
  await clientFor(a.pds).call('com.atproto.server.activateAccount', { auth: bearer(a), method: 'POST' })
}

export async function adminTakedown(p: TestPds, did: string, applied: boolean): Promise<void> {
  await clientFor(p).call('com.atproto.admin.updateSubjectStatus', {
    auth: p.adminAuth,
    body: { subject: { $type: 'com.atproto.admin.defs#repoRef', did }, takedown: { applied, ref: applied ? 'e2e-takedown' : undefined } },
  })
}

export async function adminDeleteAccount(p: TestPds, did: string): Promise<void> {
  await clientFor(p).call('com.atproto.admin.deleteAccount', { auth: p.adminAuth, body: { did } })
}

/**
 * Moves an account from its PDS to `to` the way a user's client does (the "account migration"
 * guide): service auth from the old PDS, createAccount on the new one with the existing DID,
 * repo export/import, a PLC operation naming the new PDS and its signing key (signed here with
 * the old PDS's rotation key instead of its email-token flow, submitted through the new PDS),
 * activate on the new PDS,
 * deactivate on the old. Returns the account as hosted by `to`.
 */
export async function migrateAccount(
  a: Account,
  to: TestPds,
  plcUrl: string,
  hooks: { afterPlcUpdate?: () => Promise<void>; beforeDeactivateOld?: () => Promise<void> } = {},
): Promise<Account> {
  const from = a.pds
  const oldClient = clientFor(from)
  const newClient = clientFor(to)
  const desc = await newClient.call<{ did: string }>('com.atproto.server.describeServer')
  const { token } = await oldClient.call<{ token: string }>('com.atproto.server.getServiceAuth', {
    auth: bearer(a),
    query: { aud: desc.did, lxm: 'com.atproto.server.createAccount' },
  })
  const created = await newClient.call<{ did: string; accessJwt: string }>('com.atproto.server.createAccount', {
    auth: `Bearer ${token}`,
    body: { did: a.did, handle: a.handle, email: `${a.handle}.moved@example.test`, password: 'password' },
  })
  const moved: Account = { did: a.did, handle: a.handle, accessJwt: created.accessJwt, pds: to }

  const repoRes = await fetch(new URL(`/xrpc/com.atproto.sync.getRepo?did=${encodeURIComponent(a.did)}`, from.url))
  if (!repoRes.ok) throw new Error(`getRepo → ${repoRes.status} ${await repoRes.text()}`)
  const car = new Uint8Array(await repoRes.arrayBuffer())
  const imp = await fetch(new URL('/xrpc/com.atproto.repo.importRepo', to.url), {
    method: 'POST',
    headers: { authorization: bearer(moved), 'content-type': 'application/vnd.ipld.car' },
    body: car,
  })
  if (!imp.ok) throw new Error(`importRepo → ${imp.status} ${await imp.text()}`)

  const creds = await newClient.call<{
    rotationKeys: string[]
    alsoKnownAs: string[]
    verificationMethods: Record<string, string>
    services: Record<string, { type: string; endpoint: string }>
  }>('com.atproto.identity.getRecommendedDidCredentials', { auth: bearer(moved) })
  const plcLib = require('@did-plc/lib')
  const plcClient = new plcLib.Client(plcUrl)
  const lastOp = await plcClient.getLastOp(a.did)
  const op = await plcLib.createUpdateOp(lastOp, from.rotationKey, (normalized: Record<string, unknown>) => ({
    ...normalized,
    // keep the old PDS's rotation key too: tests may sign later operations with it
    rotationKeys: [...new Set([...creds.rotationKeys, from.rotationKey.did()])],
    alsoKnownAs: creds.alsoKnownAs,
    verificationMethods: creds.verificationMethods,
    services: creds.services,
  }))
  // Submitted through the new PDS, as the real flow does: it forwards the operation to PLC and
  // emits an #identity for the DID (the relay's cue to re-resolve it).
  await newClient.call('com.atproto.identity.submitPlcOperation', { auth: bearer(moved), body: { operation: op } })
  await hooks.afterPlcUpdate?.()

  await activateAccount(moved)
  await hooks.beforeDeactivateOld?.()
  await deactivateAccount(a)
  return moved
}

/** The DID's current atproto signing key (did:key) as the PLC directory says. */
export async function signingKeyOf(plcUrl: string, did: string): Promise<string> {
  const plcLib = require('@did-plc/lib')
  const data = await new plcLib.Client(plcUrl).getDocumentData(did)
  return data.verificationMethods.atproto
}

// ---- a raw firehose reader (the oracle for what a PDS emitted, and a plain downstream consumer) --

export interface RawEvent {
  /** header `t` (e.g. '#commit'), or `error` for an error frame */
  t: string
  seq: number
  did: string
  body: Record<string, any>
  bytes: Uint8Array
}

export class RawFirehose {
  readonly url: string
  readonly events: RawEvent[] = []
  readonly errors: Array<{ error: string; message?: string }> = []
  closed = false
  closeCode: number | null = null
  private ws: import('ws').WebSocket | null = null
  private waiters: Array<() => void> = []

  constructor(url: string) {
    this.url = url
  }

  async open(): Promise<void> {
    const { WebSocket } = await import('ws')
    const { decodeFirst } = await import('@atcute/cbor')
    const ws = new WebSocket(this.url)
    this.ws = ws
    ws.binaryType = 'nodebuffer'
    ws.on('message', (data: Buffer) => {
      const bytes = new Uint8Array(data)
      const [header, rest] = decodeFirst(bytes)
      const [body] = decodeFirst(rest)
      if (header.op === -1) {
        this.errors.push({ error: body.error, message: body.message })
      } else {
        this.events.push({ t: header.t, seq: body.seq, did: body.repo ?? body.did, body, bytes })
      }
      for (const w of this.waiters.splice(0)) w()
    })
    ws.on('close', (code) => {
      this.closed = true
      this.closeCode = code
      for (const w of this.waiters.splice(0)) w()
    })
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('error', reject)
    })
  }

  /** Waits until `pred` holds over the events received so far. */
  async until(pred: (events: RawEvent[]) => boolean, what = 'events', timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!pred(this.events)) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} on ${this.url} (have ${this.events.length} events)`)
      if (this.closed) throw new Error(`firehose ${this.url} closed (code ${this.closeCode}) while waiting for ${what}`)
      await new Promise<void>((r) => {
        this.waiters.push(r)
        setTimeout(r, 250)
      })
    }
  }

  lastSeq(): number | undefined {
    return this.events.at(-1)?.seq
  }

  async close(): Promise<void> {
    const ws = this.ws
    if (!ws || this.closed) return
    await new Promise<void>((resolve) => {
      ws.once('close', () => resolve())
      ws.close()
      setTimeout(() => {
        ws.terminate()
        resolve()
      }, 2_000).unref()
    })
  }
}

export function firehoseUrl(base: string, cursor?: number): string {
  const u = new URL('/xrpc/com.atproto.sync.subscribeRepos', base.replace(/^http/, 'ws'))
  if (cursor !== undefined) u.searchParams.set('cursor', String(cursor))
  return u.toString()
}
