// A minimal edge process for bridge tests (commitlog + MQTT broker + bridge), run as a real child
// with `node --import tsx`, so tests can SIGKILL it. Flags are the `tributary edge` flags.
// Prints {"event":"edge-ready","mqttPort":N} when listening.
import { createServer, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { CommitLog } from '../../src/commitlog/index.js'
import { loadConfig } from '../../src/config/index.js'
import { edgeSchema } from '../../src/config/edge.js'
import { createRootLogger } from '../../src/log/index.js'
import { LevelMetaStore } from '../../src/meta/level.js'
import { createBroker } from '../../src/mqtt/broker.js'
import { startBridge } from '../../edge/bridge/index.js'

const config = loadConfig(edgeSchema, { argv: process.argv.slice(2), env: {} })
const logger = createRootLogger({ level: config.logLevel, destination: 2 })
const log = await CommitLog.open({ dir: join(config.dataDir, 'log'), ...config.commitlog, log: logger.child({ component: 'commitlog' }) })
const meta = await LevelMetaStore.open(join(config.dataDir, 'meta'))
const broker = await createBroker({ log, config: config.limits, logger })
const server = createServer((s) => { broker.handle(s) })
await new Promise<void>((resolve) => server.listen(config.mqtt.port, '127.0.0.1', resolve))
const bridge = await startBridge({ log, meta, settings: config.bridge, broker, logger })
const statusTimer = setInterval(() => { process.stdout.write(JSON.stringify({ event: 'edge-status', ...bridge.status(), dropped: bridge.client.droppedRecords(), endOffset: log.endOffset }) + '\n') }, 250)
process.stdout.write(JSON.stringify({ event: 'edge-ready', mqttPort: (server.address() as AddressInfo).port }) + '\n')
process.once('SIGTERM', () => {
  clearInterval(statusTimer)
  void (async () => {
    await bridge.close()
    server.close()
    await broker.close()
    await log.close()
    await meta.close()
    process.exit(0)
  })()
})
