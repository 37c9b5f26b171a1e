// The public contract of the commitlog. Edge broker, bridge and the cloud's embedded store code
// against these types; the implementation lives beside this file.
import type { Logger } from '../log/index.js'

export type FlushPolicy = 'always' | 'interval' | 'none'
export type QoS = 0 | 1 | 2

export interface CommitLogOptions {
  dir: string
  segmentBytes: number
  flushPolicy: FlushPolicy
  flushIntervalMs: number
  // Least time between the starts of two fsyncs under 'always' and 'interval' (0 or omitted =
  // back to back, see README "Write path"). For flash that wears with every flush (SD cards):
  // 20 = at most 50 fsyncs/s, and every ack may wait up to 20 ms longer. With 'interval' it may
  // not exceed flushIntervalMs, the longest wait before an fsync that the policy promises.
  minFsyncGapMs?: number
  maxRecordBytes: number
  // Disk cap over all segments; 0 = no cap. Whole segments are deleted, oldest first.
  retentionBytes: number
  // Segments whose newest record is older than this are deleted; 0 = keep forever.
  retentionMs: number
  // Replicate-ahead window W (bytes): a replicator may read records that are written (in the page
  // cache) but not yet durable, up to `durableOffset + W` (`replicableOffset`). A power loss can
  // then cost the log records a replica already holds, so after a dirty shutdown recovery starts
  // the next segment W bytes past the recovered end (an offset gap): no offset a replica may hold
  // is ever reused. 0 (the default when omitted) = replicate durable records only, no gap.
  replicateAheadBytes?: number
  log: Logger
  // Injected clock (ms since epoch) for tests of time index and retention.
  now?: () => number
  // Injected fdatasync of segment files (tests of a slow disk); defaults to node:fs fdatasync.
  fdatasync?: (fd: number, callback: (err: Error | null) => void) => void
}

export interface AppendInput {
  topic: string
  payload: Buffer
  qos: QoS
  retain: boolean
  clientId: string
  // Defaults to the log's clock. Timestamps in the log never go backwards (clamped to the last).
  timestampMs?: number
}

export interface AppendResult {
  // Physical offset of the record's first byte: the record's identity in the log.
  offset: number
  // Offset just past the record; a reader continues here.
  nextOffset: number
  timestampMs: number
  // Position of this record in its topic's index (0, 1, 2, ...).
  topicOffset: number
}

export interface LogRecord {
  offset: number
  nextOffset: number
  timestampMs: number
  topic: string
  payload: Buffer
  qos: QoS
  retain: boolean
  clientId: string
}

// Called once, in append order, when the record is durable under the flush policy, or with an
// error (TRIB_ERR_LOG_IO) when it never will be. Callbacks, not promises: this is the hot path.
export type DurableCallback = (err: Error | null) => void

export type ReadStatus =
  | 'ok' // records returned (possibly fewer than asked for)
  | 'end' // offset is the end of the log: nothing yet
  | 'truncated' // offset was deleted by retention; `nextOffset` is the oldest retained offset

export interface ReadBatch {
  status: ReadStatus
  records: LogRecord[]
  // Where the next read should start.
  nextOffset: number
}

export interface ReadLimits {
  // Defaults: 1,000 records, 1 MiB. A first record larger than maxBytes is still returned whole.
  maxRecords?: number
  maxBytes?: number
  // Stop before this log offset, e.g. `durableOffset` for a replicator that must ship only
  // records that survive a crash (records past it may be lost and their offsets reused).
  maxOffset?: number
}

export interface RecoveryReport {
  dirty: boolean
  // Offsets skipped after a dirty shutdown (replicateAheadBytes > 0): the next segment starts at
  // endOffset + gapBytes; no record lies in between. 0 when none was left.
  gapBytes: number
  scannedFromOffset: number
  truncatedBytes: number
  recordsRecovered: number
  endOffset: number
}

// What retention deleted past a registered reader, so the loss is never silent.
export interface RetentionDrop {
  reader: string
  records: number
  bytes: number
}

export interface RetentionReport {
  deletedSegments: number
  deletedBytes: number
  drops: RetentionDrop[]
}

export interface CommitLogStats {
  startOffset: number
  endOffset: number
  durableOffset: number
  segments: number
  bytesOnDisk: number
  appendedRecords: number
  droppedRecords: number
}
