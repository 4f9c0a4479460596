// A scripted upstream host for end-to-end tests: an HTTP + WebSocket server on 127.0.0.1 that
// speaks just enough of a PDS (describeServer, getRepoStatus, subscribeRepos with cursor replay)
// for a relay to subscribe to it, and sends whatever frames the test hands it — valid signed
// events built from real repos, and hostile ones.
//
// Accounts are real: did:plc identities registered in the test PLC with a creation operation
// naming this upstream (`http://localhost:PORT`) as their PDS, and repos built and signed with
// @atproto/repo, so the good events pass every check a relay makes.

import http from 'node:http'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import { WriteOpAction, type Repo, type RecordWriteOp } from '@atproto/repo'
import type { Keypair } from '@atproto/crypto'
import { WebSocketServer, type WebSocket } from 'ws'
import { buildCommit, createRepo, encodeFrame, makeKeypair, nextRkey, record, type Curve } from '../unit/validator/helpers.ts'

const require = createRequire(import.meta.url)

export interface LoggedFrame {
  seq: number
  bytes: Uint8Array
  /** what the test calls it, for messages */
  label: string
}

/**
 * The scripted host. Frames sent with `emit` get an upstream seq and are kept, so a relay that
 * reconnects with `?cursor=N` is sent every kept frame above N, like a PDS replaying its
 * sequencer; `sendRaw` goes to the connected sockets only (garbage is not replayed).
 */
export class HostileUpstream {
  readonly log: LoggedFrame[] = []
  /** `cursor` query of every subscribeRepos connection, in order (null when absent) */
  readonly connections: Array<number | null> = []
  /** DIDs asked about through getRepoStatus, in order */
  readonly statusQueries: string[] = []
  /** what getRepoStatus answers per DID (default: active) */
  readonly repoStatus = new Map<string, { active: boolean; status?: string }>()
  port = 0
  private server: http.Server
  private wss: WebSocketServer
  private sockets = new Set<WebSocket>()
  private seq = 0

  constructor() {
    this.server = http.createServer((req, res) => this.onRequest(req, res))
    this.wss = new WebSocketServer({ noServer: true })
    this.server.on('upgrade', (req, socket, head) => {
      const url = new URL(req.url ?? '/', 'http://localhost')
      if (url.pathname !== '/xrpc/com.atproto.sync.subscribeRepos') {
        socket.destroy()
        return
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, url))
    })
  }

  get hostname(): string {
    return `localhost:${this.port}`
  }

  get url(): string {
    return `http://localhost:${this.port}`
  }

  get connected(): number {
    return this.sockets.size
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve))
    this.port = (this.server.address() as AddressInfo).port
  }

  /** Next upstream seq (what `emit` will use). */
  nextSeq(): number {
    return this.seq + 1
  }

  /**
   * Sends a frame built for the next seq and keeps it for cursor replay. `build` receives the
   * seq so the body can carry it.
   */
  emit(label: string, build: (seq: number) => Uint8Array): LoggedFrame {
    const seq = ++this.seq
    const f = { seq, bytes: build(seq), label }
    this.log.push(f)
    for (const ws of this.sockets) ws.send(f.bytes, { binary: true })
    return f
  }

  /** Bytes to the open sockets only, not kept. */
  sendRaw(bytes: Uint8Array): void {
    for (const ws of this.sockets) ws.send(bytes, { binary: true })
  }

  async close(): Promise<void> {
    for (const ws of this.sockets) ws.terminate()
    this.wss.close()
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  private onConnection(ws: WebSocket, url: URL): void {
    const raw = url.searchParams.get('cursor')
    const cursor = raw === null || raw === '' ? null : Number(raw)
    this.connections.push(cursor)
    this.sockets.add(ws)
    ws.on('close', () => this.sockets.delete(ws))
    ws.on('error', () => this.sockets.delete(ws))
    // like a PDS: no cursor = live only; a cursor = everything after it, then live
    if (cursor !== null) for (const f of this.log) if (f.seq > cursor) ws.send(f.bytes, { binary: true })
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://localhost')
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(JSON.stringify(body))
    }
    switch (url.pathname) {
      case '/xrpc/com.atproto.server.describeServer':
        return json(200, { did: 'did:web:localhost', availableUserDomains: ['.test'] })
      case '/xrpc/com.atproto.sync.getRepoStatus': {
        const did = url.searchParams.get('did') ?? ''
        this.statusQueries.push(did)
        const st = this.repoStatus.get(did) ?? { active: true }
        return json(200, { did, ...st })
      }
      default:
        return json(404, { error: 'MethodNotImplemented', message: 'scripted upstream' })
    }
  }
}

// ---- accounts with real identities and signed repos -----------------------------------------

export interface ScriptedAccount {
  did: string
  handle: string
  key: Keypair & { did(): string }
  repo: Repo
  /** bodies of the commits built so far (in order), for replays */
  commits: Array<Record<string, unknown>>
}

/**
 * Registers a did:plc in the test PLC naming `pdsUrl` as its PDS and `key` as its signing key,
 * and starts an empty repo for it (whose genesis commit is never sent: the first commit the relay
 * sees carries prevData, as when a relay joins a host that has been running).
 */
export async function createScriptedAccount(
  plcUrl: string,
  pdsUrl: string,
  handle: string,
  curve: Curve = 'k256',
): Promise<ScriptedAccount> {
  const plc = require('@did-plc/lib')
  const key = await makeKeypair(curve)
  const rotation = await makeKeypair('k256')
  const { op, did } = await plc.createOp({ signingKey: key.did(), handle, pds: pdsUrl, rotationKeys: [rotation.did()], signer: rotation })
  await new plc.Client(plcUrl).sendOperation(did, op)
  const repo = await createRepo(key, did)
  return { did, handle, key, repo, commits: [] }
}

export function identityFrame(a: { did: string; handle?: string }, seq: number): Uint8Array {
  return encodeFrame('#identity', { seq, did: a.did, time: new Date().toISOString(), ...(a.handle ? { handle: a.handle } : {}) })
}

export function accountFrame(a: { did: string }, seq: number, active: boolean, status?: string): Uint8Array {
  return encodeFrame('#account', { seq, did: a.did, time: new Date().toISOString(), active, ...(status ? { status } : {}) })
}

export const createPost = (text: string): RecordWriteOp => ({
  action: WriteOpAction.Create,
  collection: 'app.bsky.feed.post',
  rkey: nextRkey(),
  record: record(text),
})

/** A valid next commit for the account; the account's repo advances. */
export async function nextCommit(
  a: ScriptedAccount,
  writes: RecordWriteOp[],
  seq: number,
): Promise<{ frame: Uint8Array; body: Record<string, unknown> }> {
  const c = await buildCommit(a.repo, a.key, writes, { seq })
  a.repo = c.repo
  a.commits.push(c.body)
  return { frame: c.frame, body: c.body }
}

/** A commit on the account's current state signed with some other key; the repo does not advance. */
export async function forgedCommit(a: ScriptedAccount, writes: RecordWriteOp[], seq: number): Promise<Uint8Array> {
  const impostor = await makeKeypair('k256')
  const c = await buildCommit(a.repo, impostor, writes, { seq })
  return c.frame
}

/** An earlier commit of the account sent again under a new seq (a rolled-back rev). */
export function replayedCommit(a: ScriptedAccount, index: number, seq: number): Uint8Array {
  const body = a.commits[index]
  if (!body) throw new Error(`no commit #${index}`)
  return encodeFrame('#commit', { ...body, seq, time: new Date().toISOString() })
}

/**
 * A routable #commit whose `blocks` is `size` bytes of filler: the frame exceeds the relay's
 * per-frame limit while staying under the WebSocket hard cap.
 */
export function oversizedCommit(a: ScriptedAccount, size: number, seq: number): Uint8Array {
  const last = a.commits.at(-1)
  if (!last) throw new Error('build a commit first')
  return encodeFrame('#commit', { ...last, seq, blocks: new Uint8Array(size).fill(0x61), time: new Date().toISOString() })
}

/**
 * A well-formed #commit with a fresh rev (so cheap checks pass) whose `blocks` is not a CAR;
 * the account's repo does not advance.
 */
export async function undecodableCommit(a: ScriptedAccount, seq: number): Promise<Uint8Array> {
  const c = await buildCommit(a.repo, a.key, [createPost('never decodable')], { seq })
  return encodeFrame('#commit', { ...c.body, blocks: new Uint8Array(2048).fill(0xff) })
}
