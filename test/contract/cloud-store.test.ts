// Runs the cloud store contract against every implementation available in this process.
import { MemoryCloudStore, newMemoryCloudState } from '../../cloud/store/memory.js'
import { openEmbeddedStore } from '../../cloud/store/open.js'
import { silentLogger } from '../../src/log/index.js'
import { tempDir } from '../helpers/net.js'
import { cloudStoreContract } from './cloud-store-suite.js'

cloudStoreContract('memory', async () => {
  const state = newMemoryCloudState()
  return { open: async () => new MemoryCloudStore(state), destroy: async () => {} }
})

cloudStoreContract('embedded', async () => {
  const dir = await tempDir('cloud-store')
  const settings = { segmentBytes: 64 * 1024, flushPolicy: 'interval' as const, flushIntervalMs: 2, maxRecordBytes: 16 * 1024, retentionBytes: 0, retentionMs: 0 }
  return { open: async () => await openEmbeddedStore(dir.path, settings, silentLogger()), destroy: dir.remove }
})
