// Composition root of `tributary edge`: the only edge module that touches process (signals).
// Lifecycle, logged as {"msg":"lifecycle","phase":...}:
//   load       config (defaults < YAML < env < flags), logger
//   recover    open the commitlog at <dataDir>/log (recovery after a dirty shutdown) and the
//              metadata store at <dataDir>/meta; the persistence loads sessions from them
//   running    broker and listeners up, then the bridge to the cloud (when --cloud-url is given);
//              one {"msg":"listening",...} line with the bound ports
//   shutting down (SIGTERM/SIGINT): stop accepting, stop the bridge (its checkpoint is saved),
//              close clients, flush cursors, flush and close
//              the log, close the metadata store; exit 0. A second signal exits at once (1).
import { join } from 'node:path'
import { describeFlags, loadConfig } from '../src/config/index.js'
import { edgeSchema, type EdgeConfig } from '../src/config/edge.js'
import { tributaryError } from '../src/errors/index.js'
import { createRootLogger, type Logger } from '../src/log/index.js'
import { CommitLog, fsyncGapProblem } from '../src/commitlog/index.js'
import { LevelMetaStore } from '../src/meta/level.js'
import { createPersistence } from '../src/mqtt/persistence.js'
import { recordAppended } from '../src/mqtt/record-offsets.js'
import { RoutingWatermark } from '../src/mqtt/routing-watermark.js'
import { createBroker } from '../src/mqtt/broker.js'
import { capYoungGeneration, disableAllocationSitePretenuring } from '../src/mqtt/young-generation.js'
import { startListeners } from './listeners.js'
import { startHealthServer, type HealthServer } from './http.js'
import { createEdgeMetrics } from './metrics.js'
import { startBridge, validateBridgeSettings, type RunningBridge } from './bridge/index.js'

export const EDGE_USAGE = `usage: tributary edge [--config FILE] [flags]

Runs the edge MQTT broker. Every setting is a flag, a YAML key (--config FILE) or an environment
variable TRIBUTARY_<FLAG> (e.g. TRIBUTARY_MQTT_PORT=1883); flags win over env over the file.

flags:
  --config FILE              YAML file with any of the settings below
  --check-config             validate the configuration and exit (0 = valid, 2 = invalid)
${describeFlags(edgeSchema)}`

// Cross-field checks the per-field schema cannot express.
function checkConfig (config: EdgeConfig): void {
  validateBridgeSettings(config.bridge)
  if (config.mqtt.tlsPort >= 0) {
    if (config.mqtt.tlsCertFile === undefined) throw tributaryError('TRIB_ERR_CONFIG_INVALID', 'config field "mqtt.tlsCertFile": required when mqtt.tlsPort is set', { field: 'mqtt.tlsCertFile' })
    if (config.mqtt.tlsKeyFile === undefined) throw tributaryError('TRIB_ERR_CONFIG_INVALID', 'config field "mqtt.tlsKeyFile": required when mqtt.tlsPort is set', { field: 'mqtt.tlsKeyFile' })
  }
  const { flushPolicy, flushIntervalMs, minFsyncGapMs } = config.commitlog
  const gapProblem = fsyncGapProblem(flushPolicy, flushIntervalMs, minFsyncGapMs)
  if (gapProblem !== undefined) {
    throw tributaryError('TRIB_ERR_CONFIG_INVALID', `config field "commitlog.minFsyncGapMs": ${gapProblem}`, { field: 'commitlog.minFsyncGapMs' })
  }
}

export async function main (argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(EDGE_USAGE)
    return 0
  }
  // --check-config: validate and exit (install scripts run it before enabling the service).
  const checkOnly = argv.includes('--check-config')
  const config = loadConfig(edgeSchema, { argv: checkOnly ? argv.filter((a) => a !== '--check-config') : argv, env })
  checkConfig(config)
  if (checkOnly) {
    console.log('configuration is valid')
    return 0
  }
  const logger = createRootLogger({ level: config.logLevel, name: 'tributary-edge' })
  try {
    return await runEdge(config, logger, process)
  } finally {
    logger.flush()
  }
}

type SignalSource = Pick<NodeJS.Process, 'once' | 'exit'>

async function runEdge (config: EdgeConfig, rootLogger: Logger, proc: SignalSource): Promise<number> {
  // Lifecycle lines (a handful per run, including the bound ports that scripts and tests read)
  // are logged even at --log-level warn/error; only `silent` hides them.
  const lifecycle = config.logLevel === 'silent' || rootLogger.isLevelEnabled('info') ? rootLogger : rootLogger.child({}, { level: 'info' })
  const logger = rootLogger
  lifecycle.info({ phase: 'load', dataDir: config.dataDir, flushPolicy: config.commitlog.flushPolicy, gcPretenuring: config.runtime.gcPretenuring, gcSemiSpaceMib: config.runtime.gcSemiSpaceMib }, 'lifecycle')
  // Before anything allocates much: keeps memory per connection low (src/mqtt/young-generation.ts).
  if (!config.runtime.gcPretenuring) disableAllocationSitePretenuring()
  const youngGeneration = capYoungGeneration(config.runtime.gcSemiSpaceMib, logger)

  // Signals that arrive while starting up are remembered and honoured once we are running.
  let stopRequested: ((signal: string) => void) | null = null
  let earlySignal: string | null = null
  let stopping = false
  const onSignal = (signal: string): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal during shutdown: exiting now')
      logger.flush()
      proc.exit(1)
    }
    stopping = true
    if (stopRequested !== null) stopRequested(signal)
    else earlySignal = signal
  }
  proc.once('SIGTERM', () => { onSignal('SIGTERM') })
  proc.once('SIGINT', () => { onSignal('SIGINT') })

  lifecycle.info({ phase: 'recover' }, 'lifecycle')
  const log = await CommitLog.open({
    dir: join(config.dataDir, 'log'),
    ...config.commitlog,
    log: logger.child({ component: 'commitlog' })
  })
  lifecycle.info({ recovery: log.recovery }, 'commitlog open')
  let meta: LevelMetaStore
  try {
    meta = await LevelMetaStore.open(join(config.dataDir, 'meta'))
  } catch (err) {
    await log.close()
    throw err
  }
  // Session cursors are never persisted past a record aedes has not routed yet (routing-watermark.ts).
  const watermark = new RoutingWatermark()
  const persistence = createPersistence({ log, meta, logger: logger.child({ component: 'persistence' }), watermark })
  const metrics = createEdgeMetrics()
  metrics.gauge('tributary_edge_log_end_offset', 'Commitlog end offset (bytes)', () => log.endOffset)
  metrics.gauge('tributary_edge_log_durable_offset', 'Commitlog durable offset (bytes)', () => log.durableOffset)

  let broker: Awaited<ReturnType<typeof createBroker>> | undefined
  let listeners: Awaited<ReturnType<typeof startListeners>> | undefined
  let health: HealthServer | undefined
  let bridge: RunningBridge | undefined
  try {
    broker = await createBroker({
      log,
      persistence,
      config: config.limits,
      logger: logger.child({ component: 'broker' }),
      onAppended: (packet, result) => { recordAppended(packet, result); watermark.onAppended(packet, result) },
      observeAckSeconds: metrics.observeAckSeconds
    })
    broker.aedes.on('publish', watermark.onPublished)
    metrics.attach(broker)
    listeners = await startListeners(config.mqtt, config.limits.maxPacketBytes, broker.handle, logger.child({ component: 'listeners' }))
    if (config.http.port >= 0) health = await startHealthServer(config.mqtt.host, config.http.port, metrics.registry)
    // Bridge to the cloud (edge/bridge/): only when a cloud URL is configured.
    if (config.bridge.cloudUrls.length > 0) bridge = await startBridge({ log, meta, settings: config.bridge, broker, logger, registry: metrics.registry })
  } catch (err) {
    logger.error({ err }, 'start-up failed')
    await stop(0)
    throw err
  }

  async function stop (code: number): Promise<number> {
    health?.setReady(false)
    await bridge?.close()
    const listenersClosed = listeners?.close()
    await broker?.close()
    await listenersClosed
    await persistence.destroy()
    await log.close()
    await meta.close()
    await health?.close()
    youngGeneration?.stop()
    return code
  }

  lifecycle.info({ mqttPort: listeners.mqttPort, wsPort: listeners.wsPort, tlsPort: listeners.tlsPort, httpPort: health?.port ?? -1 }, 'listening')
  lifecycle.info({ phase: 'running' }, 'lifecycle')

  const signal = await new Promise<string>((resolve) => {
    if (earlySignal !== null) resolve(earlySignal)
    else stopRequested = resolve
  })
  lifecycle.info({ phase: 'shutting down', signal }, 'lifecycle')
  const code = await stop(0)
  lifecycle.info({ phase: 'stopped' }, 'lifecycle')
  return code
}
