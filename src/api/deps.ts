// What the API endpoints are built from (see registerApi in ./index.ts).

import type { Registry } from 'prom-client'
import type { Config } from '../core/config.ts'
import type { Pool } from '../core/db.ts'
import type { Logger } from '../core/log.ts'
import type { RelayControl } from './control.ts'

export interface ApiDeps {
  db: Pool
  config: Config
  control: RelayControl
  log: Logger
  registry: Registry
}
