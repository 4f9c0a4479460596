// Configuration options owned by src/broadcaster (merged into the single table in src/core/config.ts).
import type { OptionSpec } from '../core/config.ts'

export const BROADCASTER_OPTIONS = [
  { key: 'ringMaxFrames', env: 'RELAY_RING_MAX_FRAMES', kind: 'int', default: '50000', min: 100, max: 100_000_000, group: 'Firehose consumers',
    doc: 'Most recent frames kept in memory for live consumers and recent cursors; older cursors are served from Postgres.' },
  { key: 'ringMaxBytes', env: 'RELAY_RING_MAX_BYTES', kind: 'bytes', default: '64MiB', min: 1048576, group: 'Firehose consumers',
    doc: 'Byte cap of the in-memory ring (whichever of the two caps is reached first evicts).' },
  { key: 'consumerSoftLimit', env: 'RELAY_CONSUMER_SOFT_LIMIT', kind: 'bytes', default: '4MiB', min: 65536, group: 'Firehose consumers',
    doc: 'A consumer whose socket backlog exceeds this stops getting live pushes and is fed from the ring/log as it drains (catch-up), then rejoins live.' },
  { key: 'consumerHardLimit', env: 'RELAY_CONSUMER_HARD_LIMIT', kind: 'bytes', default: '32MiB', min: 65536, group: 'Firehose consumers',
    doc: 'A consumer whose backlog stays above this for RELAY_CONSUMER_TOO_SLOW_AFTER while falling further behind gets `ConsumerTooSlow` and is closed.' },
  { key: 'consumerTooSlowAfter', env: 'RELAY_CONSUMER_TOO_SLOW_AFTER', kind: 'duration', default: '30s', min: 1000, group: 'Firehose consumers',
    doc: 'How long a consumer may stay above the hard limit before it is kicked.' },
  { key: 'consumerPingInterval', env: 'RELAY_CONSUMER_PING_INTERVAL', kind: 'duration', default: '30s', min: 1000, group: 'Firehose consumers',
    doc: 'Ping interval for consumers; one that neither answers nor reads for a full interval is terminated.' },
  { key: 'maxConsumersPerIp', env: 'RELAY_MAX_CONSUMERS_PER_IP', kind: 'int', default: '0', min: 0, max: 1_000_000, group: 'Firehose consumers',
    doc: 'Concurrent firehose connections allowed per client IP (429 beyond); 0 = unlimited.' },
  { key: 'replayPageSize', env: 'RELAY_REPLAY_PAGE_SIZE', kind: 'int', default: '500', min: 1, max: 10000, group: 'Firehose consumers',
    doc: 'Events read from Postgres per page when replaying a cursor older than the ring.' },
] as const satisfies readonly OptionSpec[]
