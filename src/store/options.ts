// Configuration options owned by src/store (merged into the single table in src/core/config.ts).
import type { OptionSpec } from '../core/config.ts'

export const STORE_OPTIONS = [] as const satisfies readonly OptionSpec[]
