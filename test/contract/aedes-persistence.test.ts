// aedes-persistence's own abstract test suite (the contract every aedes persistence must meet)
// run against our adapter: a real CommitLog in a temp dir, with the memory MetaStore and again
// with the LevelDB one. The suite enqueues arbitrary packets that are not in the log, so it
// exercises the stored-copy fallback; the log-backed cursor path is covered by
// test/integration/mqtt-order.test.ts.
import { describe, test } from 'node:test'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { CommitLog } from '../../src/commitlog/index.js'
import { silentLogger } from '../../src/log/index.js'
import { LevelMetaStore } from '../../src/meta/level.js'
import { MemoryMetaStore } from '../../src/meta/memory.js'
import type { MetaStore } from '../../src/meta/types.js'
import { createPersistence } from '../../src/mqtt/persistence.js'
import { tempDir } from '../helpers/net.js'

const require = createRequire(import.meta.url)
const abstractSuite = require('aedes-persistence/abstract.js') as (opts: { test: unknown, persistence: () => Promise<unknown>, testAsync: boolean }) => void

async function makePersistence (metaKind: 'memory' | 'level'): Promise<unknown> {
  const dir = await tempDir('persist-contract')
  const logger = silentLogger()
  const log = await CommitLog.open({
    dir: join(dir.path, 'log'),
    segmentBytes: 1 << 20,
    flushPolicy: 'none',
    flushIntervalMs: 5,
    maxRecordBytes: 64 * 1024,
    retentionBytes: 0,
    retentionMs: 0,
    log: logger
  })
  const meta: MetaStore = metaKind === 'memory' ? new MemoryMetaStore() : await LevelMetaStore.open(join(dir.path, 'meta'))
  const persistence = createPersistence({ log, meta, logger })
  // The suite destroys each instance; the stores under it are ours to close.
  const destroy = persistence.destroy.bind(persistence)
  persistence.destroy = async () => {
    await destroy()
    await meta.close()
    await log.close()
    await dir.remove()
  }
  return persistence
}

for (const metaKind of ['memory', 'level'] as const) {
  describe(`aedes-persistence abstract suite: commitlog + ${metaKind} MetaStore`, () => {
    abstractSuite({ test, persistence: async () => await makePersistence(metaKind), testAsync: true })
  })
}
