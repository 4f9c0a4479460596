// Configuration options owned by src/api (merged into the single table in src/core/config.ts).
import type { OptionSpec } from '../core/config.ts'

export const API_OPTIONS = [
  {
    key: 'disableRequestCrawl',
    env: 'RELAY_DISABLE_REQUEST_CRAWL',
    kind: 'bool',
    default: 'false',
    group: 'Admin',
    doc: 'Initial state of the public `com.atproto.sync.requestCrawl` switch (admin requestCrawl always works). Once an operator flips it with `/admin/subs/setEnabled`, the stored value wins and survives restarts.',
  },
  {
    key: 'newHostsPerDayLimit',
    env: 'RELAY_NEW_HOSTS_PER_DAY_LIMIT',
    kind: 'int',
    default: '50',
    min: 0,
    max: 1_000_000,
    group: 'Admin',
    doc: 'Initial limit of new hosts the public requestCrawl may add per sliding 24 hours (admin adds are exempt). Once an operator changes it with `/admin/subs/setPerDayLimit`, the stored value wins and survives restarts.',
  },
] as const satisfies readonly OptionSpec[]
