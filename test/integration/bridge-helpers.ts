// In-process building blocks for bridge tests: a cloud node and an edge (commitlog + broker +
// bridge), on ephemeral loopback ports and temp dirs.
import { createServer, type Server, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { connectAsync, type MqttClient } from 'mqtt'
import { CommitLog } from '../../src/commitlog/index.js'
import { loadConfig } from '../../src/config/index.js'
import { cloudSchema, type CloudConfig } from '../../src/config/cloud.js'
import { edgeSchema } from '../../src/config/edge.js'
import { silentLogger, type Logger } from '../../src/log/index.js'
import { LevelMetaStore } from '../../src/meta/level.js'
import { createBroker, type TributaryBroker } from '../../src/mqtt/broker.js'
import { startCloudNode, type CloudNode } from '../../cloud/node.js'
import { startBridge, type RunningBridge } from '../../edge/bridge/index.js'

export async function startTestCloud (dataDir: string, extraArgs: string[] = [], logger: Logger = silentLogger()): Promise<CloudNode> {
  const config: CloudConfig = loadConfig(cloudSchema, {
    argv: ['--data-dir', dataDir, '--mqtt-host', '127.0.0.1', '--mqtt-port', '0', '--bridge-host', '127.0.0.1', '--bridge-port', '0', '--http-host', '127.0.0.1', '--http-port', '0', '--edge-token', 'edge-a=secret-a', '--edge-token', 'edge-b=secret-b', '--flush-interval', '2', ...extraArgs]
  })
  return await startCloudNode({ config, logger })
}

export interface TestEdge {
  log: CommitLog
  meta: LevelMetaStore
  broker: TributaryBroker
  bridge: RunningBridge
  mqttPort: number
  close: () => Promise<void>
}

export async function startTestEdge (dataDir: string, bridgeArgs: string[], logger: Logger = silentLogger()): Promise<TestEdge> {
  const config = loadConfig(edgeSchema, { argv: ['--data-dir', dataDir, '--flush-interval', '2', ...bridgeArgs] })
  const log = await CommitLog.open({ dir: join(dataDir, 'log'), ...config.commitlog, log: logger })
  const meta = await LevelMetaStore.open(join(dataDir, 'meta'))
  const broker = await createBroker({ log, config: config.limits, logger })
  const server: Server = createServer((s) => { broker.handle(s) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const bridge = await startBridge({ log, meta, settings: config.bridge, broker, logger })
  return {
    log,
    meta,
    broker,
    bridge,
    mqttPort: (server.address() as AddressInfo).port,
    close: async () => {
      await bridge.close()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await broker.close()
      await log.close()
      await meta.close()
    }
  }
}

export async function mqttClient (port: number, opts: { clientId?: string, clean?: boolean } = {}): Promise<MqttClient> {
  return await connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: opts.clientId, clean: opts.clean ?? true, reconnectPeriod: 0, protocolVersion: 4 })
}

// Every record in a cloud store, in store order.
export async function storeContents (node: CloudNode): Promise<Array<{ edgeId: string, topic: string, payload: string, edgeOffset: number }>> {
  const out: Array<{ edgeId: string, topic: string, payload: string, edgeOffset: number }> = []
  let seq = 0
  for (;;) {
    const b = await node.store.read(seq, { maxRecords: 1000 })
    for (const r of b.records) out.push({ edgeId: r.edgeId, topic: r.topic, payload: r.payload.toString(), edgeOffset: r.edgeOffset })
    if (b.records.length === 0) return out
    seq = b.nextSeq
  }
}
