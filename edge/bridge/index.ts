// The edge's bridge to the cloud, as one call for edge/main.ts:
//   const bridge = await startBridge({ log, meta, settings: config.bridge, broker, logger, registry })
//   ...; await bridge.close()
// Registers lag and drop metrics in the edge's prom-client registry when one is given.
import { readFileSync } from 'node:fs'
import { rootCertificates } from 'node:tls'
import { Counter, Gauge, type Registry } from 'prom-client'
import type { Logger } from '../../src/log/index.js'
import type { MetaStore } from '../../src/meta/types.js'
import { isValidTopicFilter } from '../../src/protocol/topic-filter.js'
import { tributaryError } from '../../src/errors/index.js'
import { rememberLogPosition } from '../../src/mqtt/record-offsets.js'
import type { AppendResult } from '../../src/commitlog/types.js'
import { BridgeClient, type BridgeLog, type BridgeSettings, type BridgeStatus, type LocalPublish } from './client.js'

export { BridgeClient, DOWNLINK_CLIENT_ID } from './client.js'
export type { BridgeLog, BridgeSettings, BridgeStatus } from './client.js'

// The part of the broker the bridge uses: publish a downlink to local subscribers.
export interface LocalBroker {
  aedes: { publish: (packet: any, done: (err?: Error | null) => void) => void } // eslint-disable-line @typescript-eslint/no-explicit-any
}

export interface StartBridgeOptions {
  log: BridgeLog
  meta: MetaStore
  settings: BridgeSettings
  broker: LocalBroker
  logger: Logger
  registry?: Registry
}

export interface RunningBridge {
  client: BridgeClient
  status: () => BridgeStatus
  close: () => Promise<void>
}

export function validateBridgeSettings (s: BridgeSettings): void {
  for (const url of s.cloudUrls) {
    if (!/^wss?:\/\//.test(url)) throw tributaryError('TRIB_ERR_CONFIG_INVALID', `config field "bridge.cloudUrls": "${url}" must start with ws:// or wss://`, { field: 'bridge.cloudUrls' })
  }
  for (const f of s.forward) {
    if (!isValidTopicFilter(f)) throw tributaryError('TRIB_ERR_CONFIG_INVALID', `config field "bridge.forward": "${f}" is not a valid MQTT topic filter`, { field: 'bridge.forward' })
  }
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(s.edgeId)) throw tributaryError('TRIB_ERR_CONFIG_INVALID', 'config field "bridge.edgeId": letters, digits, _ or -, at most 64', { field: 'bridge.edgeId' })
  trustedCas(s.caFile) // throws when the file is unreadable or holds no certificate
}

// The CAs a wss:// cloud is checked against: the system's plus the configured file's (a `ca`
// option replaces Node's list, so the system CAs are named too). Unreadable file: a config error.
function trustedCas (caFile: string | undefined): string[] | undefined {
  if (caFile === undefined) return undefined
  let pem: string
  try {
    pem = readFileSync(caFile, 'utf8')
  } catch (err) {
    throw tributaryError('TRIB_ERR_CONFIG_INVALID', `config field "bridge.caFile": cannot read "${caFile}": ${(err as Error).message}`, { field: 'bridge.caFile' })
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw tributaryError('TRIB_ERR_CONFIG_INVALID', `config field "bridge.caFile": "${caFile}" holds no PEM certificate`, { field: 'bridge.caFile' })
  return [...rootCertificates, pem]
}

export async function startBridge (opts: StartBridgeOptions): Promise<RunningBridge> {
  validateBridgeSettings(opts.settings)
  const cas = trustedCas(opts.settings.caFile)
  const publishLocal = (msg: LocalPublish, appended: AppendResult, done: () => void): void => {
    // Log-backed like a device's publish: offline queues of persistent sessions hold a cursor.
    rememberLogPosition(msg.payload, appended)
    opts.broker.aedes.publish({ cmd: 'publish', topic: msg.topic, payload: msg.payload, qos: msg.qos, retain: msg.retain, dup: false }, () => { done() })
  }
  const client = new BridgeClient({ log: opts.log, meta: opts.meta, settings: opts.settings, logger: opts.logger.child({ component: 'bridge' }), publishLocal, trustedCas: cas })
  if (opts.registry !== undefined) registerBridgeMetrics(opts.registry, client)
  await client.start()
  return { client, status: () => client.status(), close: async () => { await client.close() } }
}

export function registerBridgeMetrics (registry: Registry, client: BridgeClient): void {
  let snap: BridgeStatus | undefined
  let snapAt = 0
  // One status computation per scrape (it reads one record for the oldest age).
  const st = (): BridgeStatus => {
    const t = Date.now()
    if (snap === undefined || t - snapAt > 100) { snap = client.status(); snapAt = t }
    return snap
  }
  const gauge = (name: string, help: string, read: () => number): void => {
    registry.registerMetric(new Gauge({ name, help, registers: [], collect () { this.set(read()) } }))
  }
  const counter = (name: string, help: string, read: () => number): void => {
    registry.registerMetric(new Counter({ name, help, registers: [], collect () { this.reset(); this.inc(read()) } }))
  }
  const c = client.counters
  gauge('tributary_bridge_connected', '1 while the bridge link to the cloud is up', () => st().state === 'ready' ? 1 : 0)
  gauge('tributary_bridge_lag_messages', 'Messages not yet acknowledged by the cloud (in flight exact, unread estimated)', () => st().lagMessages)
  gauge('tributary_bridge_lag_bytes', 'Commitlog bytes not yet acknowledged by the cloud', () => st().lagBytes)
  gauge('tributary_bridge_oldest_unacked_age_seconds', 'Age of the oldest message the cloud has not acknowledged', () => st().oldestUnackedAgeMs / 1000)
  gauge('tributary_bridge_acked_offset', 'Edge log offset up to which the cloud holds everything', () => st().ackedOffset)
  counter('tributary_bridge_dropped_records_total', 'Records deleted by the disk cap before the bridge sent them', () => client.droppedRecords())
  counter('tributary_bridge_batches_sent_total', 'Batches sent to the cloud (resends included)', () => c.batchesSent)
  counter('tributary_bridge_records_sent_total', 'Records sent to the cloud (resends included)', () => c.recordsSent)
  counter('tributary_bridge_connects_total', 'Successful bridge connections', () => c.connects)
  counter('tributary_bridge_disconnects_total', 'Bridge links lost or failed attempts', () => c.disconnects)
  counter('tributary_bridge_heartbeat_timeouts_total', 'Links declared dead after heartbeat silence', () => c.heartbeatTimeouts)
  counter('tributary_bridge_refused_total', 'Connections refused by the cloud (auth)', () => c.refused)
  counter('tributary_bridge_downlinks_applied_total', 'Downlinks stored and published locally', () => c.downlinksApplied)
  counter('tributary_bridge_downlinks_expired_total', 'Downlinks that arrived expired and were dropped', () => c.downlinksExpired)
}
