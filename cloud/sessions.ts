// The cloud broker's persistence, assembled (design: cloud/README.md "Sessions").
//
// Persistent MQTT sessions of cloud subscribers (clean=false) are records in a compare-and-set
// key-value store: subscriptions, a cursor into the cloud store, holder and epoch
// (cloud/sessions/record.ts). A subscriber may reconnect to ANY node: that node takes the
// record, replays from the store what matches from the cursor on, then delivers live
// (cloud/sessions/follower.ts). No message is copied per subscriber.
// Where the records live:
// - embedded store: this node's LevelDB (<data-dir>/sessions/meta), one node;
// - JetStream store: the bucket <storePrefix>_CSESS in the NATS cluster, shared by every node.
//
// The rest of the broker's state (retained messages, wills, inbound QoS 2) stays in the edge's
// persistence adapter (src/mqtt/persistence.ts) over a MetaStore of this node: LevelDB, or with
// a NATS store a namespace of the bucket <storePrefix>_SESSIONS per node id (one writer per
// namespace: a lock), so a node restarted with the same --node-id keeps its retained messages.
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { CommitLog } from '../src/commitlog/index.js'
import type { FlushPolicy } from '../src/commitlog/types.js'
import { isTributaryError } from '../src/errors/index.js'
import type { Logger } from '../src/log/index.js'
import { JetStreamMetaStore } from '../src/meta/jetstream.js'
import { LevelMetaStore } from '../src/meta/level.js'
import type { MetaStore } from '../src/meta/types.js'
import { createPersistence } from '../src/mqtt/persistence.js'
import type { CloudTopicTemplate } from './dispatcher.js'
import { MetaSessionKV, type SessionKV } from './sessions/kv.js'
import { JetStreamSessionKV } from './sessions/kv-jetstream.js'
import { SessionManager } from './sessions/manager.js'
import { ClusterSessionPersistence } from './sessions/persistence.js'
import type { CloudStore } from './store/types.js'

export interface SessionPersistence {
  persistence: ClusterSessionPersistence
  manager: SessionManager
  close: () => Promise<void>
}

export interface SessionSettings {
  store: CloudStore
  template: CloudTopicTemplate
  nodeId: string
  // A disconnected persistent session is removed after this.
  expiryMs: number
  // Lease on a connected session, renewed at a third of it.
  leaseTtlMs: number
  // Unacknowledged QoS>0 messages per session (the broker's in-flight window).
  windowMessages: number
  now: () => number
}

// How often the embedded (LevelDB) session records are swept for expired ones.
const EXPIRY_SWEEP_MS = 60_000

export interface ClusterSessionSettings {
  servers: readonly string[]
  // Bucket in the cluster, e.g. <storePrefix>_SESSIONS (retained, wills: per node id).
  bucket: string
  // Bucket of the persistent sessions, shared by every node, e.g. <storePrefix>_CSESS.
  sessionBucket: string
  // Subject prefix of session hand-over requests (the store prefix).
  prefix: string
  nodeId: string
  replicas?: number
}

// A previous process with this node id that was SIGKILLed still holds the namespace lock until
// it expires (15 s): wait a little longer than that before giving up.
const LOCK_WAIT_MS = 20_000
const LOCK_RETRY_MS = 500

// Node id -> KV namespace token. Ids outside [A-Za-z0-9_-] or longer than 48 characters get a
// hash suffix so that two different ids never share a namespace.
export function sessionNamespace (nodeId: string): string {
  const plain = nodeId.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 48)
  if (plain === nodeId && plain.length > 0) return plain
  return `${plain}-${createHash('sha256').update(nodeId).digest('hex').slice(0, 12)}`
}

async function openClusterMeta (c: ClusterSessionSettings, logger: Logger): Promise<MetaStore> {
  const deadline = Date.now() + LOCK_WAIT_MS
  for (;;) {
    try {
      return await JetStreamMetaStore.open({ servers: c.servers, bucket: c.bucket, namespace: sessionNamespace(c.nodeId), replicas: c.replicas, logger })
    } catch (err) {
      if (!isTributaryError(err, 'TRIB_ERR_META_IO') || !/held by another process/.test((err as Error).message) || Date.now() > deadline) throw err
      logger.warn({ nodeId: c.nodeId }, 'sessions of this node id are locked by an earlier process; waiting for its lock to expire')
      await new Promise((resolve) => setTimeout(resolve, LOCK_RETRY_MS))
    }
  }
}

export async function openSessionPersistence (dir: string, settings: { segmentBytes: number, flushPolicy: FlushPolicy, flushIntervalMs: number, maxRecordBytes: number }, logger: Logger, sessions: SessionSettings, cluster?: ClusterSessionSettings): Promise<SessionPersistence> {
  // Nothing is ever appended to this log; it exists because the adapter reads offline queues
  // from a log (cursors). Persistent sessions do not use it (they follow the cloud store).
  const log = await CommitLog.open({ dir: join(dir, 'log'), segmentBytes: settings.segmentBytes, flushPolicy: settings.flushPolicy, flushIntervalMs: settings.flushIntervalMs, maxRecordBytes: settings.maxRecordBytes, retentionBytes: 0, retentionMs: 0, log: logger })
  let meta: MetaStore | undefined
  let kv: SessionKV | undefined
  try {
    meta = cluster === undefined ? await LevelMetaStore.open(join(dir, 'meta')) : await openClusterMeta(cluster, logger)
    if (cluster === undefined) {
      const local = new MetaSessionKV(meta, logger)
      local.startExpiry(sessions.expiryMs, Math.min(EXPIRY_SWEEP_MS, sessions.expiryMs), sessions.now)
      kv = local
    } else {
      kv = await JetStreamSessionKV.open({ servers: cluster.servers, bucket: cluster.sessionBucket, prefix: cluster.prefix, replicas: cluster.replicas, expiryMs: sessions.expiryMs, logger })
    }
  } catch (err) {
    await meta?.close()
    await log.close()
    throw err
  }
  const inner = createPersistence({ log, meta, logger })
  const manager = new SessionManager({ kv, store: sessions.store, template: sessions.template, nodeId: sessions.nodeId, leaseTtlMs: sessions.leaseTtlMs, expiryMs: sessions.expiryMs, windowMessages: sessions.windowMessages, logger, now: sessions.now })
  manager.start()
  const persistence = new ClusterSessionPersistence(inner, manager)
  const sessionKv = kv
  const metaStore = meta
  return {
    persistence,
    manager,
    close: async () => {
      await persistence.destroy()
      await sessionKv.close()
      await log.close()
      await metaStore.close()
    }
  }
}
