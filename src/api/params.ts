// Query-parameter parsing for the XRPC and admin endpoints. Every failure is a 400 InvalidRequest
// whose message names the parameter, so a client can tell which of its inputs was wrong.

import { parseHostname } from '../subscriber/hostname.ts'
import { isDid, isTid } from '../validator/syntax.ts'
import { invalidRequest } from './http.ts'

// Lexicon NSID syntax: a reversed domain authority (≥ 2 labels, first label not starting with a
// digit) followed by a name segment of letters and digits only, not starting with a digit.
const NSID_RE =
  /^[a-zA-Z](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)+\.[a-zA-Z][a-zA-Z0-9]{0,62}$/
const NSID_MAX = 317

export function isNsid(s: unknown): s is string {
  if (typeof s !== 'string' || s.length > NSID_MAX || !NSID_RE.test(s)) return false
  // the authority (everything before the name segment) is a domain name: at most 253 characters
  return s.lastIndexOf('.') <= 253
}

/** The single value of a parameter; undefined when absent or empty. Repeating it is an error. */
export function single(params: URLSearchParams, name: string): string | undefined {
  const all = params.getAll(name)
  if (all.length > 1) throw invalidRequest(`parameter ${name} must be given at most once`)
  const v = all[0]
  return v === undefined || v === '' ? undefined : v
}

export function required(params: URLSearchParams, name: string): string {
  const v = single(params, name)
  if (v === undefined) throw invalidRequest(`parameter ${name} is required`)
  return v
}

/** Lexicon `integer` with minimum/maximum; absent → default. */
export function intParam(params: URLSearchParams, name: string, opts: { min: number; max: number; default: number }): number {
  const raw = single(params, name)
  if (raw === undefined) return opts.default
  const n = /^-?[0-9]{1,16}$/.test(raw) ? Number(raw) : Number.NaN
  if (!Number.isSafeInteger(n) || n < opts.min || n > opts.max) {
    throw invalidRequest(`parameter ${name} must be an integer between ${opts.min} and ${opts.max}`)
  }
  return n
}

/** Keyset cursor over a bigserial column, written by this server as a decimal string. */
export function idCursor(params: URLSearchParams, name = 'cursor'): number {
  const raw = single(params, name)
  if (raw === undefined) return 0
  const n = /^[0-9]{1,16}$/.test(raw) ? Number(raw) : Number.NaN
  if (!Number.isSafeInteger(n)) throw invalidRequest(`parameter ${name} is not a cursor returned by this server`)
  return n
}

export function didParam(params: URLSearchParams, name = 'did'): string {
  const v = required(params, name)
  if (!isDid(v)) throw invalidRequest(`parameter ${name} must be a DID (did:method:identifier)`)
  return v
}

export function tidParam(params: URLSearchParams, name: string): string | undefined {
  const v = single(params, name)
  if (v !== undefined && !isTid(v)) throw invalidRequest(`parameter ${name} must be a TID (13-character repo revision)`)
  return v
}

export function nsidParam(params: URLSearchParams, name: string): string {
  const v = required(params, name)
  if (!isNsid(v)) throw invalidRequest(`parameter ${name} must be an NSID (e.g. app.bsky.feed.post)`)
  return v
}

/** A hostname in canonical stored form (lower-case, no scheme; localhost:PORT allowed). */
export function hostnameValue(input: unknown, name: string): string {
  if (typeof input !== 'string' || input.trim() === '') throw invalidRequest(`${name} is required`)
  const parsed = parseHostname(input, { allowLocalhost: true })
  if (!parsed.ok) throw invalidRequest(`${name} is not a valid hostname: ${parsed.message}`)
  return parsed.hostname
}

export function hostnameParam(params: URLSearchParams, name: string): string {
  return hostnameValue(required(params, name), `parameter ${name}`)
}

/** Go's strconv.ParseBool spellings, which indigo's admin endpoints (and so goat) use. */
export function boolParam(params: URLSearchParams, name: string): boolean | undefined {
  const v = single(params, name)
  if (v === undefined) return undefined
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(v)) return true
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(v)) return false
  throw invalidRequest(`parameter ${name} must be true or false`)
}
