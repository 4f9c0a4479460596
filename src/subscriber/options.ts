// Configuration options owned by src/subscriber (merged into the single table in src/core/config.ts).
import type { OptionSpec } from '../core/config.ts'

export const SUBSCRIBER_OPTIONS = [] as const satisfies readonly OptionSpec[]
