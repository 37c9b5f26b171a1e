// A bare BridgeClient over an edge commitlog (no broker), for tests that fill the log directly:
// what reaches the cloud depends on the log and the bridge alone.
import { join } from 'node:path'
import { BridgeClient, type BridgeLog, type BridgeSettings } from '../../edge/bridge/client.js'
import { CommitLog, type CommitLogOptions } from '../../src/commitlog/index.js'
import { silentLogger } from '../../src/log/index.js'
import { MemoryMetaStore } from '../../src/meta/memory.js'

export async function openEdgeLog (dir: string, extra: Partial<CommitLogOptions> = {}): Promise<CommitLog> {
  return await CommitLog.open({ dir: join(dir, 'log'), segmentBytes: 1024 * 1024, flushPolicy: 'interval', flushIntervalMs: 2, maxRecordBytes: 64 * 1024, retentionBytes: 0, retentionMs: 0, log: silentLogger(), ...extra })
}

// Edge `edge-a` (token `secret-a`, as bridge-helpers.ts's test cloud knows it), forwarding '#'.
export function bridgeClient (log: BridgeLog, cloudUrl: string, settings: Partial<BridgeSettings> = {}): BridgeClient {
  return new BridgeClient({
    log,
    meta: new MemoryMetaStore(),
    logger: silentLogger(),
    publishLocal: (_m, _a, done) => { done() },
    settings: { cloudUrls: [cloudUrl], edgeId: 'edge-a', cloudToken: 'secret-a', forward: ['#'], batchMaxBytes: 1024 * 1024, batchMaxRecords: 1000, windowBatches: 4, rateMsgsPerSec: 0, rateBytesPerSec: 0, heartbeatMs: 1000, heartbeatTimeoutMs: 5000, backoffMinMs: 50, backoffMaxMs: 500, connectTimeoutMs: 5000, checkpointIntervalMs: 100, ...settings }
  })
}
