// The contract across the worker boundary: what a subscriber hands to the pool with each frame,
// and what a validation worker returns for it. Everything here is structured-clone friendly.

/** Why a frame was not accepted; every value is a label of relay_events_dropped_total. */
export type DropReason =
  | 'decode' // undecodable CBOR / framing inside an otherwise routable frame
  | 'size' // a protocol size limit
  | 'structure' // missing/mistyped fields, bad op shapes, commit version, CAR roots
  | 'too_big' // deprecated tooBig flag set
  | 'mismatch' // event fields disagree with the signed commit (repo, rev, commit CID)
  | 'signature'
  | 'rev_stale' // rev not newer than the stored rev (retransmission)
  | 'rev_future'
  | 'chain_break' // only in strict chain mode
  | 'inversion' // MST inversion did not reproduce prevData, or blocks were missing
  | 'record' // a record block missing, oversized or not what the op claims
  | 'host_authority' // the DID document names another host
  | 'inactive' // the account is not active (deactivated, deleted, taken down, ...)
  | 'throttled' // the host is at its account limit
  | 'resolve_failed' // the DID could not be resolved, so the signature could not be checked
  | 'desynchronized' // strict chain mode: account waits for a #sync
  | 'worker_crash' // the worker died twice on this frame

export interface FrameMeta {
  hostId: number
  /** normalised hostname the frame arrived from (host authority compares against it) */
  hostname: string
  upstreamSeq: number
  /** ms since epoch when the subscriber read the frame */
  receivedAt: number
}

export type EventKind = 'commit' | 'sync' | 'identity' | 'account'

/** An event that passed validation and must be persisted, then broadcast. */
export interface AcceptedEvent {
  did: string
  kind: EventKind
  /** complete outbound frame with the seq encoded as one 0x00 byte at seqOffset */
  frame: Uint8Array
  seqOffset: number
  /** the account's repo state after this #commit / #sync */
  repoState?: { rev: string; commitCid: string; dataCid: string; allowEqual?: boolean }
  hostId?: number
  upstreamSeq?: number
  /** record count changes per collection, for listReposByCollection */
  collectionDeltas?: Array<{ collection: string; delta: number }>
}

export type FrameResult =
  | { kind: 'accept'; event: AcceptedEvent; chainBreak?: boolean }
  | { kind: 'drop'; reason: DropReason; detail?: string }
  /** nothing to persist (#info, unknown message types); the cursor still advances */
  | { kind: 'ignore'; reason: string }
