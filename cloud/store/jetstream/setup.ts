// Creates (or adopts) the streams and KV buckets the JetStream store uses. Idempotent: every
// cloud node runs it at start-up; the first one creates, the others find them.
import type { JetStreamClient, JetStreamManager, StreamConfig } from '@nats-io/jetstream'
import { DiscardPolicy, RetentionPolicy, StorageType } from '@nats-io/jetstream'
import { Kvm, type KV } from '@nats-io/kv'
import type { StoreNames } from './subjects.js'

export interface JetStreamLayoutOptions {
  // Copies of every stream and bucket. 3 in a cluster (survives one node down), 1 on a single
  // server. Only applies when a stream is created; an existing stream keeps its own.
  replicas: number
  // Uplink retention. 0 = unlimited. The uplink stream is the cloud's copy of every edge's log.
  uplinkMaxAgeMs: number
  uplinkMaxBytes: number
  downlinkMaxAgeMs: number
  // Nats-Msg-Id duplicate window. A safety net only: idempotency rests on the per-edge chain
  // (see JETSTREAM.md), so the window can stay short.
  duplicateWindowMs: number
}

export interface JetStreamLayout {
  offsets: KV
  leases: KV
  counters: KV
}

const NANOS_PER_MS = 1_000_000

export async function ensureLayout (jsm: JetStreamManager, js: JetStreamClient, names: StoreNames, opts: JetStreamLayoutOptions): Promise<JetStreamLayout> {
  const uplink: Partial<StreamConfig> & { name: string } = {
    name: names.uplinkStream,
    subjects: [`${names.uplinkPrefix}.*`],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    num_replicas: opts.replicas,
    max_age: opts.uplinkMaxAgeMs * NANOS_PER_MS,
    max_bytes: opts.uplinkMaxBytes === 0 ? -1 : opts.uplinkMaxBytes,
    duplicate_window: opts.duplicateWindowMs * NANOS_PER_MS
  }
  const downlink: Partial<StreamConfig> & { name: string } = {
    name: names.downlinkStream,
    subjects: [`${names.downlinkPrefix}.*`],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    // Downlinks are few and small. Acked ones stay (see downlinks.ts) until max_age removes them;
    // a downlink without expiry still undelivered after max_age is lost (documented limit).
    num_replicas: opts.replicas,
    max_age: opts.downlinkMaxAgeMs * NANOS_PER_MS,
    duplicate_window: opts.duplicateWindowMs * NANOS_PER_MS
  }
  await addOrAdopt(jsm, uplink)
  await addOrAdopt(jsm, downlink)
  const kvm = new Kvm(js)
  // history 1: only the current value of a key matters (compare-and-set on its revision).
  // allow_direct off: a direct get may be answered by a lagging follower, and a lease check must
  // see the latest acquisition (reads go to the stream leader instead).
  const offsets = await kvm.create(names.offsetBucket, { replicas: opts.replicas, history: 1, allow_direct: false })
  const leases = await kvm.create(names.leaseBucket, { replicas: opts.replicas, history: 1, allow_direct: false })
  const counters = await kvm.create(names.counterBucket, { replicas: opts.replicas, history: 1, allow_direct: false })
  return { offsets, leases, counters }
}

async function addOrAdopt (jsm: JetStreamManager, cfg: Partial<StreamConfig> & { name: string }): Promise<void> {
  try {
    await jsm.streams.info(cfg.name)
    return
  } catch (err) {
    if (!isStreamNotFound(err)) throw err
  }
  try {
    await jsm.streams.add(cfg)
  } catch (err) {
    // Another node created it between our info() and add(): adopt it.
    await jsm.streams.info(cfg.name).catch(() => { throw err })
  }
}

function isStreamNotFound (err: unknown): boolean {
  return (err as { code?: number }).code === 10059 || /stream not found/i.test((err as Error).message)
}
