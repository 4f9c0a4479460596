// Account status rules (indigo's model, protocol.md §4.2): a local status set by this relay and an
// upstream status reported by the account's host, combined for gating and for the #account events
// the relay emits.

/** Local status set by this relay (admin takedown/suspension, host account limit). */
export type LocalStatus = 'active' | 'takendown' | 'suspended' | 'throttled'

const UPSTREAM = new Set(['active', 'deactivated', 'deleted', 'desynchronized', 'suspended', 'takendown', 'throttled', 'inactive'])

/** Upstream vocabulary; anything else a host says is recorded as the generic 'inactive'. */
export function normalizeUpstreamStatus(status: string): string {
  return UPSTREAM.has(status) ? status : 'inactive'
}

/** Upstream status carried by a host's #account event (or a getRepoStatus answer). */
export function upstreamFromAccountEvent(active: boolean, status: string | null | undefined): string {
  if (active) return 'active'
  return typeof status === 'string' && status !== '' ? normalizeUpstreamStatus(status) : 'inactive'
}

/**
 * The relay's view, as emitted in #account: a local status other than active overrides the host
 * (a relay takedown masks an upstream `active`); host-limit throttling reads as `throttled`; an
 * active account carries no status field.
 */
export function combinedStatus(local: string, upstream: string): { active: boolean; status: string | null } {
  if (local !== 'active') return { active: false, status: local }
  if (upstream === 'active') return { active: true, status: null }
  return { active: false, status: upstream }
}

export type Gate = 'pass' | 'inactive' | 'throttled' | 'recheck'

/** What to do with a #commit/#sync of this account before validating it. */
export function gateRepoEvent(local: string, upstream: string): Gate {
  if (local === 'throttled') return 'throttled'
  if (local !== 'active') return 'inactive'
  if (upstream !== 'active') return 'recheck'
  return 'pass'
}
