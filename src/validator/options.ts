// Configuration options owned by src/validator (merged into the single table in src/core/config.ts).
import type { OptionSpec } from '../core/config.ts'

export const VALIDATOR_OPTIONS = [] as const satisfies readonly OptionSpec[]
