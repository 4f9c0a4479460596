// Configuration options owned by src/api (merged into the single table in src/core/config.ts).
import type { OptionSpec } from '../core/config.ts'

export const API_OPTIONS = [] as const satisfies readonly OptionSpec[]
