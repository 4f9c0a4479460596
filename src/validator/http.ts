// Small JSON GET over undici for the worker's outbound calls (DID documents, getRepoStatus). Always
// through a dispatcher from src/subscriber/ssrf.ts; `request()` never follows redirects, a 3xx is
// just an unexpected status. Bodies are capped so a hostile server can't make a worker buffer
// megabytes.
import { request, type Dispatcher } from 'undici'

export interface JsonGetOptions {
  dispatcher: Dispatcher
  timeoutMs: number
  maxBytes: number
  userAgent?: string
}

export interface JsonResponse {
  status: number
  /** parsed body for 2xx and 4xx with a JSON body; undefined otherwise */
  json: unknown
}

// A pooled keep-alive connection the server closed while idle fails the first write; the GET is
// idempotent, so one immediate retry on a fresh connection is safe.
const STALE_SOCKET_CODES = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE'])

export async function getJson(url: string, opts: JsonGetOptions): Promise<JsonResponse> {
  const send = () =>
    request(url, {
      method: 'GET',
      dispatcher: opts.dispatcher,
      headers: { accept: 'application/json, application/did+ld+json', ...(opts.userAgent ? { 'user-agent': opts.userAgent } : {}) },
      signal: AbortSignal.timeout(opts.timeoutMs),
    })
  let res: Awaited<ReturnType<typeof send>>
  try {
    res = await send()
  } catch (err) {
    if (!STALE_SOCKET_CODES.has((err as { code?: string }).code ?? '')) throw err
    res = await send()
  }
  const chunks: Buffer[] = []
  let total = 0
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    total += chunk.length
    if (total > opts.maxBytes) {
      res.body.destroy()
      throw new Error(`response from ${new URL(url).host} exceeds ${opts.maxBytes} bytes`)
    }
    chunks.push(chunk)
  }
  let json: unknown
  if (total > 0) {
    try {
      json = JSON.parse(Buffer.concat(chunks, total).toString('utf8'))
    } catch {
      json = undefined
    }
  }
  return { status: res.statusCode, json }
}
