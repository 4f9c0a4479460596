// Configuration options owned by src/broadcaster (merged into the single table in src/core/config.ts).
import type { OptionSpec } from '../core/config.ts'

export const BROADCASTER_OPTIONS = [] as const satisfies readonly OptionSpec[]
