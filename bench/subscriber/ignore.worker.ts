// Stub validation worker for the intake benchmark: every frame is "ignored" (no decode), so the
// figures measure subscribers → pool transport only.
import type { ShardTask } from '../../src/pool/sharded-pool.ts'
import type { FrameMeta, FrameResult } from '../../src/pool/types.ts'

const IGNORE: FrameResult = { kind: 'ignore', reason: 'bench' }

export default function ignore(task: ShardTask<FrameMeta> | { control: unknown }): FrameResult[] | string {
  if ('control' in task) return 'ok'
  return new Array<FrameResult>(task.metas.length).fill(IGNORE)
}
