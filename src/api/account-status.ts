// An account's hosting status as this relay presents it (getRepoStatus, listRepos, the status
// errors of getLatestCommit/getRepo, and relay-originated #account events): the relay's own
// status overrides the upstream one, as in indigo's Account.AccountStatus/IsActive.

import { XrpcError } from './http.ts'

export interface AccountStatusColumns {
  /** local: active | takendown | suspended | throttled */
  status: string
  /** reported by the host: active | deactivated | deleted | desynchronized | suspended | takendown | throttled | inactive */
  upstream_status: string
  /** strict chain mode: waiting for a #sync */
  desynchronized: boolean
}

export interface AccountView {
  active: boolean
  /** omitted when active without qualification, and for a bare upstream `inactive` (no claim) */
  status?: string
}

export function accountView(a: AccountStatusColumns): AccountView {
  if (a.status !== 'active') {
    // a host-throttled account's content is not redistributed: inactive, reported as throttled
    return { active: false, status: a.status === 'host-throttled' ? 'throttled' : a.status }
  }
  if (a.upstream_status !== 'active') {
    return a.upstream_status === 'inactive' ? { active: false } : { active: false, status: a.upstream_status }
  }
  // The relay noticed a broken chain and waits for a #sync: the account is still served (the
  // spec's "desynchronized (active may be true)"), but its content may lag.
  if (a.desynchronized) return { active: true, status: 'desynchronized' }
  return { active: true }
}

/**
 * The 403 for an account whose content the relay does not serve (getLatestCommit, getRepo).
 * Names follow the lexicons (RepoTakendown, RepoSuspended, RepoDeactivated) plus indigo's
 * RepoDeleted and RepoInactive for the rest; undefined when the account is active.
 */
export function inactiveRepoError(view: AccountView): XrpcError | undefined {
  if (view.active) return undefined
  switch (view.status) {
    case 'takendown':
      return new XrpcError(403, 'RepoTakendown', 'repo has been taken down')
    case 'suspended':
      return new XrpcError(403, 'RepoSuspended', 'repo is suspended')
    case 'deactivated':
      return new XrpcError(403, 'RepoDeactivated', 'repo is deactivated')
    case 'deleted':
      return new XrpcError(403, 'RepoDeleted', 'repo has been deleted')
    default:
      return new XrpcError(403, 'RepoInactive', `account is not active: ${view.status ?? 'inactive'}`)
  }
}
