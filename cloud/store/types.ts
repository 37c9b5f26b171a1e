// The cloud store contract. Implementations: memory (tests), embedded (one node: commitlog +
// LevelDB), JetStream (cluster, issue 5). One contract suite (test/contract/cloud-store-suite.ts)
// runs against all of them.
//
// Designed so a JetStream store fits:
// - idempotency by (edge id, edge offset): the committed offset per edge is the dedupe key. In
//   JetStream it lives in a KV bucket updated with compare-and-set (expected revision), which stays
//   idempotent beyond the stream's duplicate window;
// - fencing: appends carry the lease the node holds for that edge; a store refuses (`fenced`)
//   an append whose lease is not the current one (KV compare-and-set on the lease key);
// - `seq` is an opaque, increasing, cloud-wide position (commitlog offset, JetStream stream sequence);
// - downlinks are a queue per edge with a per-edge increasing `seq` and an absolute expiry.
import type { BridgeRecord, QoSLevel } from '../../src/protocol/bridge-frames.js'

export interface AppendBatchInput {
  // Edge log positions covered by the batch; records filtered out at the edge lie between.
  fromOffset: number
  toOffset: number
  records: readonly BridgeRecord[]
}

export type AppendOutcome =
  // `committedOffset`: the edge offset up to which everything is durable in the store (the ack).
  // `appended`: records written by this call (0 for a replayed batch).
  | { status: 'ok', committedOffset: number, appended: number }
  // The lease is not (or no longer) the current one: another node owns this edge.
  | { status: 'fenced', holder: string }

export interface StoredRecord {
  seq: number // cloud-wide position of this record
  nextSeq: number // where a reader continues
  edgeId: string
  edgeOffset: number
  timestampMs: number // the original timestamp at the edge
  topic: string // the topic at the edge (the cloud topic template is applied by the MQTT front end)
  qos: QoSLevel
  retain: boolean
  payload: Buffer
}

export type StoreReadStatus = 'ok' | 'end' | 'truncated'
export interface StoreReadBatch {
  status: StoreReadStatus
  records: StoredRecord[]
  nextSeq: number
}

export interface StoreReadLimits {
  maxRecords?: number
  maxBytes?: number
}

export interface Lease {
  edgeId: string
  holder: string
  // Increases each time the lease changes hands; appends carry it (the fencing token).
  epoch: number
  expiresAtMs: number
}

export type LeaseOutcome =
  | { status: 'ok', lease: Lease }
  | { status: 'held', holder: string, expiresAtMs: number }

export interface DownlinkInput {
  topic: string
  payload: Buffer
  qos: QoSLevel
  retain: boolean
  // Absolute expiry (ms since epoch); 0 = never.
  expiresAtMs: number
}

export interface Downlink extends DownlinkInput {
  edgeId: string
  seq: number // per edge, increasing from 1
}

export interface PendingDownlinks {
  downlinks: Downlink[]
  // Removed because they expired before delivery (counted, not silent).
  expired: number
}

export interface StoreStats {
  records: number
  bytes: number
  edges: number
  pendingDownlinks: number
}

export interface CloudStore {
  readonly kind: string

  // Idempotent: records with an edge offset below the edge's committed offset are skipped, so a
  // replayed batch is a no-op. Resolves when the records are durable. Callers issue the batches
  // of one edge without waiting for the previous call (pipelining): an implementation must apply
  // calls for one edge in call order.
  appendBatch (edgeId: string, batch: AppendBatchInput, lease: Lease): Promise<AppendOutcome>
  // Edge offset up to which this edge's data is durable (0 = nothing yet).
  committedOffset (edgeId: string): Promise<number>

  // Consumers: the cloud-wide sequence, in arrival order.
  read (fromSeq: number, limits?: StoreReadLimits): Promise<StoreReadBatch>
  // Resolves when data at or past `seq` exists, or when the store closes.
  waitForData (seq: number): Promise<void>
  // Position of the first record at or after `timeMs` (the end when none is).
  seqForTime (timeMs: number): Promise<number>
  // One edge topic from a cloud-wide position.
  readTopic (edgeId: string, topic: string, fromSeq: number, limits?: StoreReadLimits): Promise<StoreReadBatch>
  endSeq (): Promise<number>
  // Named consumer positions (e.g. the MQTT dispatcher), kept in the store so any node resumes them.
  getCursor (name: string): Promise<number | undefined>
  setCursor (name: string, seq: number): Promise<void>

  // Downlink queue per edge.
  enqueueDownlink (edgeId: string, input: DownlinkInput): Promise<Downlink>
  // Pending downlinks with seq > afterSeq, oldest first; expired ones are removed and counted.
  pendingDownlinks (edgeId: string, afterSeq: number, nowMs: number, max: number): Promise<PendingDownlinks>
  // Removes every downlink of this edge with seq <= upToSeq (they are in the edge's log).
  ackDownlinks (edgeId: string, upToSeq: number): Promise<void>

  // Fencing. A holder acquires an edge when the lease is free, expired or already its own.
  acquireLease (edgeId: string, holder: string, ttlMs: number, nowMs: number): Promise<LeaseOutcome>
  renewLease (lease: Lease, ttlMs: number, nowMs: number): Promise<LeaseOutcome>
  releaseLease (lease: Lease): Promise<void>

  stats (): Promise<StoreStats>
  close (): Promise<void>
}

// Edge ids become parts of keys and topics: a conservative alphabet keeps them safe everywhere
// (LevelDB keys, MQTT topic levels, NATS subject tokens).
export const EDGE_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/
export function isValidEdgeId (id: string): boolean {
  return EDGE_ID_PATTERN.test(id)
}
