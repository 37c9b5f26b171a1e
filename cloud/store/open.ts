// Opens the store a cloud node is configured with.
import { join } from 'node:path'
import { CommitLog } from '../../src/commitlog/index.js'
import type { FlushPolicy } from '../../src/commitlog/types.js'
import { tributaryError } from '../../src/errors/index.js'
import type { Logger } from '../../src/log/index.js'
import { LevelMetaStore } from '../../src/meta/level.js'
import { EmbeddedCloudStore } from './embedded.js'
import type { CloudStore } from './types.js'

export interface EmbeddedStoreSettings {
  segmentBytes: number
  flushPolicy: FlushPolicy
  flushIntervalMs: number
  maxRecordBytes: number
  retentionBytes: number
  retentionMs: number
}

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

export async function openCloudStore (kind: string, dataDir: string, settings: EmbeddedStoreSettings, logger: Logger): Promise<CloudStore> {
  if (kind === 'embedded') return await openEmbeddedStore(dataDir, settings, logger)
  throw tributaryError('TRIB_ERR_CONFIG_INVALID', `config field "store": unknown store "${kind}" (this build has: embedded)`, { field: 'store' })
}
