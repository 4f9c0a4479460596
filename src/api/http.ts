// Minimal HTTP plumbing for the XRPC and admin APIs: exact-path routing, XRPC error bodies,
// bounded JSON bodies, and WebSocket upgrade dispatch. No framework: the surface is small and
// the hot path (the consumer WebSocket) bypasses it entirely.

import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'

export const SERVER_HEADER_PRODUCT = 'atproto-relay-ts'

/** `Server` header value; the `atproto-relay` token lets other relays detect loops. */
export function serverHeader(version: string): string {
  return `${SERVER_HEADER_PRODUCT}/${version} (atproto-relay)`
}

export class XrpcError extends Error {
  readonly status: number
  readonly error: string
  constructor(status: number, error: string, message: string) {
    super(message)
    this.status = status
    this.error = error
  }
}

export const invalidRequest = (message: string) => new XrpcError(400, 'InvalidRequest', message)

export interface RequestContext {
  url: URL
  req: IncomingMessage
  res: ServerResponse
}

export type Handler = (ctx: RequestContext) => Promise<void> | void
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer, url: URL) => void

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const payload = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(payload), ...headers })
  res.end(payload)
}

export function sendXrpcError(
  res: ServerResponse,
  status: number,
  error: string,
  message?: string,
  headers: Record<string, string> = {},
): void {
  sendJson(res, status, message === undefined ? { error } : { error, message }, headers)
}

/** Writes an XRPC error as a raw HTTP response on a socket that has not been upgraded. */
export function rejectUpgrade(
  socket: Duplex,
  status: number,
  error: string,
  message: string,
  extraHeaders: Record<string, string> = {},
): void {
  const body = JSON.stringify({ error, message })
  const headers = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(body)),
    connection: 'close',
    ...extraHeaders,
  }
  const head = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\r\n')
  socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\n${head}\r\n\r\n${body}`)
}

export async function readJsonBody(req: IncomingMessage, maxBytes = 64 * 1024): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > maxBytes) throw new XrpcError(413, 'PayloadTooLarge', `request body exceeds ${maxBytes} bytes`)
    chunks.push(chunk as Buffer)
  }
  if (size === 0) return undefined
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw invalidRequest('request body is not valid JSON')
  }
}

interface Route {
  method: string
  handler: Handler
}

export interface ApiServerOptions {
  version: string
  log: { error(obj: object, msg: string): void; warn(obj: object, msg: string): void }
}

export class ApiServer {
  readonly server: http.Server
  private readonly routes = new Map<string, Route[]>()
  private readonly upgrades = new Map<string, UpgradeHandler>()
  private readonly opts: ApiServerOptions
  private readonly serverHeader: string

  constructor(opts: ApiServerOptions) {
    this.opts = opts
    this.serverHeader = serverHeader(opts.version)
    this.server = http.createServer({ requestTimeout: 30_000, headersTimeout: 15_000, keepAliveTimeout: 5_000 }, (req, res) => {
      void this.dispatch(req, res)
    })
    this.server.on('upgrade', (req, socket, head) => this.dispatchUpgrade(req, socket, head))
    this.server.on('clientError', (err, socket) => {
      // Malformed HTTP: answer 400 rather than letting the socket hang or crash the process.
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n')
      else socket.destroy(err)
    })
  }

  route(method: 'GET' | 'POST', path: string, handler: Handler): void {
    const list = this.routes.get(path) ?? []
    list.push({ method, handler })
    this.routes.set(path, list)
  }

  query(nsid: string, handler: Handler): void {
    this.route('GET', `/xrpc/${nsid}`, handler)
  }

  procedure(nsid: string, handler: Handler): void {
    this.route('POST', `/xrpc/${nsid}`, handler)
  }

  upgrade(path: string, handler: UpgradeHandler): void {
    this.upgrades.set(path, handler)
  }

  hasUpgrade(path: string): boolean {
    return this.upgrades.has(path)
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(port, host, () => {
        this.server.off('error', reject)
        resolve((this.server.address() as { port: number }).port)
      })
    })
  }

  /** Stops accepting connections; open keep-alive sockets are closed when idle. */
  stopAccepting(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve())
      this.server.closeIdleConnections()
    })
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader('server', this.serverHeader)
    res.setHeader('access-control-allow-origin', '*')
    let url: URL
    try {
      url = new URL(req.url ?? '/', 'http://relay.invalid')
    } catch {
      return sendXrpcError(res, 400, 'InvalidRequest', 'malformed request URL')
    }
    try {
      if (req.method === 'OPTIONS') {
        res.writeHead(204, {
          'access-control-allow-methods': 'GET, POST, OPTIONS',
          'access-control-allow-headers': 'Content-Type, Authorization, Accept, Origin',
          'access-control-max-age': '86400',
        })
        return void res.end()
      }
      const routes = this.routes.get(url.pathname)
      if (!routes) {
        if (this.upgrades.has(url.pathname)) {
          return sendXrpcError(res, 426, 'InvalidRequest', 'this endpoint is a WebSocket stream: send an Upgrade request', {
            upgrade: 'websocket',
          })
        }
        if (url.pathname.startsWith('/xrpc/'))
          return sendXrpcError(res, 501, 'MethodNotImplemented', `method not implemented: ${url.pathname.slice(6)}`)
        return sendXrpcError(res, 404, 'NotFound', 'not found')
      }
      const route = routes.find((r) => r.method === req.method || (r.method === 'GET' && req.method === 'HEAD'))
      if (!route) {
        return sendXrpcError(res, 405, 'InvalidRequest', `method ${req.method} not allowed`, {
          allow: routes.map((r) => r.method).join(', '),
        })
      }
      await route.handler({ url, req, res })
    } catch (err) {
      if (err instanceof XrpcError) {
        if (!res.headersSent) sendXrpcError(res, err.status, err.error, err.message)
        else res.destroy()
        return
      }
      this.opts.log.error({ err, path: url.pathname }, 'unhandled error in request handler')
      if (!res.headersSent) sendXrpcError(res, 500, 'InternalServerError', 'internal server error')
      else res.destroy()
    }
  }

  private dispatchUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy())
    let url: URL
    try {
      url = new URL(req.url ?? '/', 'http://relay.invalid')
    } catch {
      return rejectUpgrade(socket, 400, 'InvalidRequest', 'malformed request URL')
    }
    const handler = this.upgrades.get(url.pathname)
    if (!handler) return rejectUpgrade(socket, 404, 'NotFound', 'no WebSocket endpoint at this path')
    if (req.method !== 'GET') return rejectUpgrade(socket, 405, 'InvalidRequest', 'stream endpoints accept GET only')
    try {
      handler(req, socket, head, url)
    } catch (err) {
      this.opts.log.error({ err, path: url.pathname }, 'unhandled error in upgrade handler')
      rejectUpgrade(socket, 500, 'InternalServerError', 'internal server error')
    }
  }
}
