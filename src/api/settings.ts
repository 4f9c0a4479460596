// Runtime settings changed through the admin API, persisted in `relay_setting` so that they
// survive restarts (indigo keeps them in memory). The configured value is the default until an
// operator changes it; from then on the stored value wins. Read on every use: the public
// requestCrawl path is rare enough, and this keeps several relay processes on one database
// consistent without invalidation.

import type { Pool } from '../core/db.ts'

export const SETTING_REQUEST_CRAWL_ENABLED = 'requestCrawl.enabled'
export const SETTING_NEW_HOSTS_PER_DAY = 'requestCrawl.newHostsPerDay'

export interface SettingDefaults {
  requestCrawlEnabled: boolean
  newHostsPerDay: number
}

export class RelaySettings {
  private readonly db: Pool
  private readonly defaults: SettingDefaults

  constructor(db: Pool, defaults: SettingDefaults) {
    this.db = db
    this.defaults = defaults
  }

  /** Whether the public com.atproto.sync.requestCrawl admits hosts. */
  async requestCrawlEnabled(): Promise<boolean> {
    const v = await this.read(SETTING_REQUEST_CRAWL_ENABLED)
    return typeof v === 'boolean' ? v : this.defaults.requestCrawlEnabled
  }

  async setRequestCrawlEnabled(enabled: boolean): Promise<void> {
    await this.write(SETTING_REQUEST_CRAWL_ENABLED, enabled)
  }

  /** New hosts the public requestCrawl may add per sliding 24 hours (admin adds are exempt). */
  async newHostsPerDay(): Promise<number> {
    const v = await this.read(SETTING_NEW_HOSTS_PER_DAY)
    return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : this.defaults.newHostsPerDay
  }

  async setNewHostsPerDay(limit: number): Promise<void> {
    await this.write(SETTING_NEW_HOSTS_PER_DAY, limit)
  }

  private async read(key: string): Promise<unknown> {
    const { rows } = await this.db.query<{ value: unknown }>('SELECT value FROM relay_setting WHERE key = $1', [key])
    return rows[0]?.value
  }

  private async write(key: string, value: unknown): Promise<void> {
    await this.db.query(
      `INSERT INTO relay_setting (key, value) VALUES ($1, $2::jsonb)
       ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`,
      [key, JSON.stringify(value)],
    )
  }
}
