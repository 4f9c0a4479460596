// The ingest → validate → persist → broadcast pipeline, assembled from the stage modules:
// subscriber (src/subscriber) → pool (src/pool) → validator (src/validator, in workers/) →
// store (src/store) → broadcaster (src/broadcaster).

import type { Component, RelayContext } from './relay.ts'

export async function pipelineComponents(_ctx: RelayContext): Promise<Component[]> {
  return []
}
