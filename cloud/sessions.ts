// Persistent MQTT sessions of cloud subscribers, kept across restarts of the cloud node: the
// edge's aedes persistence adapter (src/mqtt/persistence.ts) over a MetaStore and an empty
// commitlog. Messages reach the cloud broker from the dispatcher (not from a client's PUBLISH),
// so they are not log-backed: the adapter stores a copy per queued message and persistent
// subscriber. The cloud store remains the truth; this only holds delivery state.
//
// Where the MetaStore lives:
// - embedded store: LevelDB in <data-dir>/sessions/meta (this node's disk);
// - JetStream store: a KV bucket in the NATS cluster (src/meta/jetstream.ts), one namespace per
//   node id. A node restarted or replaced (any machine, empty disk) with the same --node-id
//   resumes its subscribers' sessions. Each namespace has one writer (a lock in the bucket), so a
//   session does NOT move to another node id: see README "Cloud cluster", known limits.
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { CommitLog } from '../src/commitlog/index.js'
import type { FlushPolicy } from '../src/commitlog/types.js'
import { isTributaryError } from '../src/errors/index.js'
import type { Logger } from '../src/log/index.js'
import { JetStreamMetaStore } from '../src/meta/jetstream.js'
import { LevelMetaStore } from '../src/meta/level.js'
import type { MetaStore } from '../src/meta/types.js'
import { createPersistence, type LogPersistence } from '../src/mqtt/persistence.js'

export interface SessionPersistence {
  persistence: LogPersistence
  close: () => Promise<void>
}

export interface ClusterSessionSettings {
  servers: readonly string[]
  // Bucket in the cluster, e.g. <storePrefix>_SESSIONS.
  bucket: string
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

export async function openSessionPersistence (dir: string, settings: { segmentBytes: number, flushPolicy: FlushPolicy, flushIntervalMs: number, maxRecordBytes: number }, logger: Logger, cluster?: ClusterSessionSettings): Promise<SessionPersistence> {
  // Nothing is ever appended to this log; it exists because the adapter reads offline queues
  // from a log (cursors), and here every queued message is a stored copy instead.
  const log = await CommitLog.open({ dir: join(dir, 'log'), segmentBytes: settings.segmentBytes, flushPolicy: settings.flushPolicy, flushIntervalMs: settings.flushIntervalMs, maxRecordBytes: settings.maxRecordBytes, retentionBytes: 0, retentionMs: 0, log: logger })
  let meta: MetaStore
  try {
    meta = cluster === undefined ? await LevelMetaStore.open(join(dir, 'meta')) : await openClusterMeta(cluster, logger)
  } catch (err) {
    await log.close()
    throw err
  }
  const persistence = createPersistence({ log, meta, logger })
  return {
    persistence,
    close: async () => {
      await persistence.destroy()
      await log.close()
      await meta.close()
    }
  }
}
