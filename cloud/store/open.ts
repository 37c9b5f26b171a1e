// Opens the store a cloud node is configured with.
import { join } from 'node:path'
import { CommitLog } from '../../src/commitlog/index.js'
import type { CommitLogOptions } from '../../src/commitlog/types.js'
import { tributaryError } from '../../src/errors/index.js'
import type { Logger } from '../../src/log/index.js'
import { LevelMetaStore } from '../../src/meta/level.js'
import { EmbeddedCloudStore } from './embedded.js'
import { openJetStreamStore, parseNatsServers } from './jetstream.js'
import type { CloudStore } from './types.js'

// The commitlog settings the embedded store takes from the cloud config (the rest are its own).
export type EmbeddedStoreSettings = Pick<CommitLogOptions, 'segmentBytes' | 'flushPolicy' | 'flushIntervalMs' | 'maxRecordBytes' | 'retentionBytes' | 'retentionMs'>

export async function openEmbeddedStore (dataDir: string, settings: EmbeddedStoreSettings, logger: Logger): Promise<EmbeddedCloudStore> {
  const log = await CommitLog.open({ dir: join(dataDir, 'log'), ...settings, log: logger.child({ component: 'store-log' }) })
  let meta: LevelMetaStore
  try {
    meta = await LevelMetaStore.open(join(dataDir, 'meta'))
  } catch (err) {
    await log.close()
    throw err
  }
  return await EmbeddedCloudStore.open({ log, meta, logger: logger.child({ component: 'store' }) })
}

// Settings of the JetStream store (`store: nats://...`); config fields storeReplicas, storePrefix.
export interface ClusterStoreSettings {
  replicas: number // 0 = automatic (3 with 3+ servers, else 1)
  prefix: string
}

// Stream and bucket names are built from the prefix: keep it to characters every NATS name allows.
const STORE_PREFIX_PATTERN = /^[A-Za-z0-9_-]{1,32}$/

export async function openCloudStore (kind: string, dataDir: string, settings: EmbeddedStoreSettings, logger: Logger, cluster?: ClusterStoreSettings): Promise<CloudStore> {
  if (kind === 'embedded') return await openEmbeddedStore(dataDir, settings, logger)
  const servers = parseNatsServers(kind)
  if (servers !== undefined) {
    const prefix = cluster?.prefix ?? 'TRIB'
    if (!STORE_PREFIX_PATTERN.test(prefix)) throw tributaryError('TRIB_ERR_CONFIG_INVALID', `config field "storePrefix": "${prefix}" must be 1 to 32 letters, digits, _ or -`, { field: 'storePrefix' })
    const replicas = cluster !== undefined && cluster.replicas > 0 ? cluster.replicas : undefined
    return await openJetStreamStore({ servers, prefix, replicas, logger: logger.child({ component: 'store' }) })
  }
  throw tributaryError('TRIB_ERR_CONFIG_INVALID', `config field "store": unknown store "${kind}" (this build has: embedded, nats://host:port,...)`, { field: 'store' })
}
