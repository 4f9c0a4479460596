// DID document fetcher over HTTP (PLC directory and did:web), SSRF-safe via the given dispatcher.
import type { Dispatcher } from 'undici'
import { getJson } from '../http.ts'
import { didDocumentUrl } from './did-doc.ts'
import type { DocFetcher } from './resolver.ts'

export interface HttpDocFetcherOptions {
  plcUrl: string
  allowInsecureHosts: boolean
  dispatcher: Dispatcher
  timeoutMs: number
  /** DID documents are a few hundred bytes; anything near this cap is not one */
  maxBytes?: number
  userAgent?: string
}

export function createHttpDocFetcher(opts: HttpDocFetcherOptions): DocFetcher {
  return async (did) => {
    const loc = didDocumentUrl(did, opts.plcUrl, opts.allowInsecureHosts)
    // Not retryable and not the network's fault, but still a failure to resolve: surfaces as 'error'.
    if (!loc.ok) throw new Error(loc.message)
    const res = await getJson(loc.url, {
      dispatcher: opts.dispatcher,
      timeoutMs: opts.timeoutMs,
      maxBytes: opts.maxBytes ?? 256 * 1024,
      userAgent: opts.userAgent,
    })
    if (res.status === 404 || res.status === 410) return { kind: 'not_found', message: `HTTP ${res.status}` }
    if (res.status !== 200) throw new Error(`DID document fetch answered HTTP ${res.status}`)
    if (res.json === undefined) throw new Error('DID document is not JSON')
    return { kind: 'found', doc: res.json }
  }
}
