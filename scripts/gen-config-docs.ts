// Regenerates docs/configuration.md from src/core/config.ts.
import { writeFileSync } from 'node:fs'
import { renderConfigDocs } from '../src/core/config.ts'

writeFileSync(new URL('../docs/configuration.md', import.meta.url), renderConfigDocs())
