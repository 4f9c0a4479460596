// atproto string-format checks used by the schema and commit decoders.
const DID_RE = /^did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]$/
const TID_RE = /^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$/
const DATETIME_RE = /^[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-6][0-9]:[0-6][0-9](\.[0-9]{1,20})?(Z|([+-][0-2][0-9]:[0-5][0-9]))$/
// MST keys are `collection/rkey`; both halves restricted to the record-key character set.
const PATH_RE = /^[a-zA-Z0-9_~.:-]{1,512}\/[a-zA-Z0-9_~.:-]{1,512}$/
const HANDLE_RE = /^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/

export function isDid(s: unknown): s is string {
  return typeof s === 'string' && s.length <= 2048 && DID_RE.test(s)
}

export function isTid(s: unknown): s is string {
  return typeof s === 'string' && s.length === 13 && TID_RE.test(s)
}

export function isDatetime(s: unknown): s is string {
  if (typeof s !== 'string' || s.length > 64 || !DATETIME_RE.test(s)) return false
  if (s.endsWith('-00:00')) return false
  return !Number.isNaN(Date.parse(s))
}

export function isRepoPath(s: unknown): s is string {
  if (typeof s !== 'string' || !PATH_RE.test(s)) return false
  const rkey = s.slice(s.indexOf('/') + 1)
  return rkey !== '.' && rkey !== '..'
}

export function isHandle(s: unknown): s is string {
  return typeof s === 'string' && s.length <= 253 && HANDLE_RE.test(s)
}
