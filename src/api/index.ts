// Single entry point of src/api: the public sync XRPC queries and the admin API, registered on
// the relay's ApiServer. The integrator supplies a RelayControl backed by the live pipeline and
// hands the returned settings to the subscriber's public requestCrawl.

import type { ApiServer } from './http.ts'
import type { ApiDeps } from './deps.ts'
import { registerAdminRoutes } from './admin/routes.ts'
import { RelaySettings } from './settings.ts'
import { registerCollectionEndpoints } from './sync/collections.ts'
import { registerHostEndpoints } from './sync/hosts.ts'
import { registerRepoEndpoints } from './sync/repos.ts'

export type { ApiDeps } from './deps.ts'
export type { RelayControl, ConsumerInfo, HostLiveStats, RateLimitInfo } from './control.ts'
export { RelaySettings } from './settings.ts'
export { accountView, type AccountView } from './account-status.ts'

export interface RegisteredApi {
  /** persisted requestCrawl switch and new-hosts-per-day limit (for the subscriber) */
  settings: RelaySettings
}

export function registerApi(api: ApiServer, deps: ApiDeps): RegisteredApi {
  const settings = new RelaySettings(deps.db, {
    requestCrawlEnabled: !deps.config.disableRequestCrawl,
    newHostsPerDay: deps.config.newHostsPerDayLimit,
  })
  registerHostEndpoints(api, deps.db)
  registerRepoEndpoints(api, deps.db)
  registerCollectionEndpoints(api, deps.db)
  registerAdminRoutes(api, { ...deps, settings })
  return { settings }
}
