// Persistent MQTT sessions of cloud subscribers, kept across restarts of the cloud node: the
// edge's aedes persistence adapter (src/mqtt/persistence.ts) over a LevelDB of its own and an
// empty commitlog. Messages reach the cloud broker from the dispatcher (not from a client's
// PUBLISH), so they are not log-backed: the adapter stores a copy per queued message and
// persistent subscriber. The cloud store remains the truth; this only holds delivery state.
import { join } from 'node:path'
import { CommitLog } from '../src/commitlog/index.js'
import type { FlushPolicy } from '../src/commitlog/types.js'
import type { Logger } from '../src/log/index.js'
import { LevelMetaStore } from '../src/meta/level.js'
import { createPersistence, type LogPersistence } from '../src/mqtt/persistence.js'

export interface SessionPersistence {
  persistence: LogPersistence
  close: () => Promise<void>
}

export async function openSessionPersistence (dir: string, settings: { segmentBytes: number, flushPolicy: FlushPolicy, flushIntervalMs: number, maxRecordBytes: number }, logger: Logger): Promise<SessionPersistence> {
  // Nothing is ever appended to this log; it exists because the adapter reads offline queues
  // from a log (cursors), and here every queued message is a stored copy instead.
  const log = await CommitLog.open({ dir: join(dir, 'log'), segmentBytes: settings.segmentBytes, flushPolicy: settings.flushPolicy, flushIntervalMs: settings.flushIntervalMs, maxRecordBytes: settings.maxRecordBytes, retentionBytes: 0, retentionMs: 0, log: logger })
  let meta: LevelMetaStore
  try {
    meta = await LevelMetaStore.open(join(dir, 'meta'))
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
