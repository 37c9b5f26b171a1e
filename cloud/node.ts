// A cloud node, assembled: store, bridge WebSocket server, MQTT front end for cloud apps,
// dispatcher (store -> MQTT), downlink routing and HTTP. Lifecycle (logged):
//   open store -> sessions -> MQTT + bridge + HTTP listening -> dispatcher -> ready -> shutting
//   down (dispatcher, HTTP, bridge, MQTT, sessions, store: the reverse). A listener that cannot
//   bind fails the start with TRIB_ERR_NET_LISTEN after closing what was opened.
// `startCloudNode` takes everything as parameters (the demo and tests run nodes in-process);
// cloud/main.ts is the composition root that reads flags and signals.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net'
import { hostname } from 'node:os'
import { WebSocketServer } from 'ws'
import type { CloudConfig } from '../src/config/cloud.js'
import { tributaryError } from '../src/errors/index.js'
import type { Logger } from '../src/log/index.js'
import { createBroker, type TributaryBroker } from '../src/mqtt/broker.js'
import { openSessionPersistence, sessionNamespace } from './sessions.js'
import { DEFAULT_FRAME_LIMITS, type FrameLimits } from '../src/protocol/bridge-frames.js'
import { BridgeSession, CloseCode } from './bridge-session.js'
import { CloudTopicTemplate, Dispatcher } from './dispatcher.js'
import { createDownlinkAppender } from './downlink.js'
import { startCloudHttp, type CloudHttp } from './http.js'
import { CloudStats, createCloudRegistry } from './metrics.js'
import { openCloudStore } from './store/open.js'
import { parseNatsServers } from './store/jetstream.js'
import { isValidEdgeId, type CloudStore } from './store/types.js'

export interface CloudNode {
  readonly mqttPort: number
  readonly bridgePort: number
  readonly httpPort: number
  readonly bridgeUrl: string
  readonly store: CloudStore
  readonly stats: CloudStats
  readonly broker: TributaryBroker
  close: () => Promise<void>
}

export interface CloudNodeOptions {
  config: CloudConfig
  logger: Logger
  // Injected store (tests, issue 5); default: opened from config.store / config.dataDir.
  store?: CloudStore
  now?: () => number
}

export function parseEdgeTokens (list: readonly string[]): Map<string, string> {
  const tokens = new Map<string, string>()
  for (const item of list) {
    const eq = item.indexOf('=')
    const edge = eq === -1 ? '' : item.slice(0, eq)
    const token = eq === -1 ? '' : item.slice(eq + 1)
    if (!isValidEdgeId(edge) || token === '') {
      throw tributaryError('TRIB_ERR_CONFIG_INVALID', `config field "edgeTokens": "${item}" must be EDGE=TOKEN with EDGE of letters, digits, _ or - (at most 64)`, { field: 'edgeTokens' })
    }
    tokens.set(edge, token)
  }
  return tokens
}

// A listener that cannot bind (port in use, ...) is a clear, coded start-up failure, not a stack.
function listenFailure (what: string, host: string, port: number, err: unknown): Error {
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'EADDRINUSE' || code === 'EADDRNOTAVAIL' || code === 'EACCES') {
    const why = code === 'EADDRINUSE' ? 'port in use' : code === 'EACCES' ? 'not permitted' : 'address not available'
    return tributaryError('TRIB_ERR_NET_LISTEN', `${what} listener cannot bind ${host}:${port}: ${why} (${code})`, { listener: what, host, port }, err)
  }
  return err as Error
}

async function listen (what: string, server: NetServer | HttpServer, port: number, host: string): Promise<number> {
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => { server.off('error', reject); resolve() })
    })
  } catch (err) {
    throw listenFailure(what, host, port, err)
  }
  return (server.address() as AddressInfo).port
}

export async function startCloudNode (opts: CloudNodeOptions): Promise<CloudNode> {
  const { config, logger } = opts
  const now = opts.now ?? Date.now
  const tokens = parseEdgeTokens(config.edgeTokens)
  const template = new CloudTopicTemplate(config.mqtt.upTemplate)
  const nodeId = config.nodeId ?? `${hostname()}-${process.pid}`
  logger.info({ nodeId, store: config.store, edges: tokens.size }, 'cloud node starting')

  const store = opts.store ?? await openCloudStore(config.store, config.dataDir, config.commitlog, logger, { replicas: config.storeReplicas, prefix: config.storePrefix })
  const stats = new CloudStats()
  const registry = createCloudRegistry(stats, store)
  const sessions = new Map<string, BridgeSession>()
  const cleanups: Array<() => Promise<void>> = [async () => { if (opts.store === undefined) await store.close() }]
  const closeAll = async (): Promise<void> => {
    for (const c of cleanups.splice(0).reverse()) await c().catch((err: Error) => { logger.warn({ err }, 'error while closing') })
  }

  try {
    // MQTT front end for cloud apps: downlinks stored before PUBACK; uplinks from the dispatcher.
    const appender = createDownlinkAppender({
      store,
      prefix: config.mqtt.downPrefix,
      ttlMs: config.downlink.ttlMs,
      now,
      stats,
      logger: logger.child({ component: 'downlink' }),
      onStored: (edgeId) => { sessions.get(edgeId)?.pumpDownlinks() }
    })
    // Persistent sessions of cloud subscribers: records in the cluster (NATS store) or this node's
    // LevelDB (embedded), delivered from the store by a follower per connected session; retained
    // messages and wills in this node's own persistence (see sessions.ts).
    const natsServers = store.kind === 'jetstream' ? parseNatsServers(config.store) : undefined
    const clusterSessions = natsServers === undefined ? undefined : { servers: natsServers, bucket: `${config.storePrefix}_SESSIONS`, sessionBucket: `${config.storePrefix}_CSESS`, prefix: config.storePrefix, nodeId, replicas: config.storeReplicas > 0 ? config.storeReplicas : undefined }
    const sessionSettings = { store, template, nodeId, expiryMs: config.sessions.expiryMs, leaseTtlMs: config.sessions.leaseTtlMs, windowMessages: config.limits.inflightWindow, now }
    const sessions$ = await openSessionPersistence(join(config.dataDir, 'sessions'), config.commitlog, logger.child({ component: 'sessions' }), sessionSettings, clusterSessions)
    cleanups.push(async () => { await sessions$.close() })
    const broker = await createBroker({ log: appender, persistence: sessions$.persistence, config: config.limits, logger: logger.child({ component: 'mqtt' }) })
    cleanups.push(async () => { await broker.close() })
    // TCP_NODELAY, as at the edge (edge/listeners.ts): with Nagle on, a delivery written while an
    // earlier segment is unacknowledged waits for the subscriber's delayed ACK (40 ms on Linux).
    const mqttServer = createNetServer({ noDelay: true }, (socket) => { broker.handle(socket) })
    const mqttPort = await listen('MQTT', mqttServer, config.mqtt.port, config.mqtt.host)
    cleanups.push(async () => { await new Promise<void>((resolve) => { mqttServer.close(() => { resolve() }) }) })

    // Bridge listener: ws (or wss with a certificate) at /bridge.
    const tls = config.bridge.tlsCertFile !== undefined && config.bridge.tlsKeyFile !== undefined
    const bridgeHttp = tls
      ? createHttpsServer({ cert: readFileSync(config.bridge.tlsCertFile!), key: readFileSync(config.bridge.tlsKeyFile!) })
      : createHttpServer()
    bridgeHttp.on('request', (_req, res) => { res.writeHead(426, { 'content-type': 'text/plain' }).end('bridge: WebSocket at /bridge\n') })
    const limits: FrameLimits = { ...DEFAULT_FRAME_LIMITS, maxFrameBytes: config.bridge.maxFrameBytes, maxTopicBytes: config.limits.maxTopicLength }
    const wss = new WebSocketServer({ server: bridgeHttp, path: '/bridge', maxPayload: config.bridge.maxFrameBytes, perMessageDeflate: false })
    const bridgeLog = logger.child({ component: 'bridge' })
    // ws re-emits the HTTP server's errors; without a listener a failed listen() would throw an
    // uncaught 'error' (a stack trace) on top of the rejection that listen() reports.
    let bridgeListening = false
    wss.on('error', (err) => { if (bridgeListening) bridgeLog.error({ err }, 'bridge server error') })
    wss.on('connection', (ws, req) => {
      stats.bridgeConnections++
      // eslint-disable-next-line no-new
      new BridgeSession(ws, {
        store,
        tokens,
        nodeId,
        config: {
          heartbeatMs: config.bridge.heartbeatMs,
          idleTimeoutMs: config.bridge.idleTimeoutMs,
          helloTimeoutMs: config.bridge.helloTimeoutMs,
          leaseTtlMs: config.bridge.leaseTtlMs,
          maxFrameBytes: config.bridge.maxFrameBytes,
          downlinkWindow: config.downlink.windowMessages
        },
        limits,
        stats,
        logger: bridgeLog,
        sessions,
        now
      }, `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? 0}`)
    })
    const bridgePort = await listen('bridge', bridgeHttp, config.bridge.port, config.bridge.host)
    bridgeListening = true
    cleanups.push(async () => {
      for (const client of wss.clients) client.close(CloseCode.GOING_AWAY, 'cloud node shutting down')
      await new Promise<void>((resolve) => { wss.close(() => { resolve() }) })
      bridgeHttp.closeAllConnections()
      await new Promise<void>((resolve) => { bridgeHttp.close(() => { resolve() }) })
    })

    let http: CloudHttp | undefined
    if (config.http.port >= 0) {
      http = await startCloudHttp(config.http.host, config.http.port, { registry, store, stats, logger }).catch((err: unknown) => { throw listenFailure('HTTP', config.http.host, config.http.port, err) })
      const h = http
      cleanups.push(async () => { await h.close() })
    }

    // Started last, once every listener is up: a failed start then never stops a dispatcher in
    // the middle of a read, where Dispatcher.stop() could miss its wake-up and wait forever.
    const dispatcher = clusterSessions === undefined
      ? new Dispatcher(store, broker.aedes, template, stats, logger.child({ component: 'dispatch' }))
      : new Dispatcher(store, broker.aedes, template, stats, logger.child({ component: 'dispatch' }), `mqtt-dispatch.${sessionNamespace(nodeId)}`, true)
    await dispatcher.start()
    cleanups.push(async () => { await dispatcher.stop() })
    http?.setReady(true)

    const bridgeHost = config.bridge.host === '0.0.0.0' ? '127.0.0.1' : config.bridge.host
    const bridgeUrl = `${tls ? 'wss' : 'ws'}://${bridgeHost}:${bridgePort}/bridge`
    logger.info({ mqttPort, bridgePort, httpPort: http?.port, bridgeUrl }, 'cloud node running')
    let closing: Promise<void> | undefined
    return {
      mqttPort,
      bridgePort,
      httpPort: http?.port ?? -1,
      bridgeUrl,
      store,
      stats,
      broker,
      close: async () => {
        closing ??= (async () => {
          logger.info('cloud node shutting down')
          http?.setReady(false)
          await closeAll()
          logger.info('cloud node stopped')
        })()
        await closing
      }
    }
  } catch (err) {
    await closeAll()
    throw err
  }
}
