// The MQTT front end shared by the edge and the cloud node: aedes 1.2 with durable acks and limits.
//
// Durable acks: aedes writes the QoS 1 PUBACK before it stores or routes a message (see DESIGN.md
// §4), and `authorizePublish` is the one hook that runs before the ack. So every client PUBLISH is
// appended to the commitlog there, synchronously and in arrival order (aedes dispatches all
// packets of one socket read concurrently, so only a synchronous append keeps their order), and
// aedes' callback runs from the log's durable callback. Consequences:
//   QoS 1: route before durable, ack after durable (as RocketMQ dispatches to consumers from the
//          written, not the flushed, log position). Right after the (buffered) append the message
//          goes to aedes' routing (online subscribers, offline queues = cursors), so delivery
//          does not wait for the write + fdatasync; the PUBACK still goes out only after the
//          record is durable under the flush policy. When aedes then calls `publish` for that
//          packet (after writing the PUBACK), it is not routed again (`publishOnce`). So:
//          - a PUBACKed message is durable, as before; a subscriber may get a message whose
//            record a crash then loses (its publisher got no PUBACK and resends: a duplicate,
//            allowed at QoS 1), and the same if the append fails or the publisher vanishes
//            before its PUBACK (the message was delivered, and is in the log unless it failed);
//          - session cursors are never persisted past the log's acked offset
//            (persistence.ts, persistLimit), so a crash cannot make a session skip records that
//            reuse the lost tail's offsets;
//          - order per publisher is the append order, as before: routing starts synchronously in
//            arrival order. A publisher's QoS 0 and QoS 2 messages are routed at other moments
//            (QoS 0 at once, QoS 2 after durable): MQTT orders per topic *and QoS* [MQTT-4.6.0-6].
//   QoS 2: PUBREC (written after incomingStorePacket) also only after the durable append, and
//          aedes routes the message only after that (delivery at PUBREL is exactly-once's job). A DUP
//          retransmission of a QoS 2 message already stored and awaiting PUBREL is not appended
//          twice; one that arrives while the original still waits for its flush (not yet stored)
//          is appended again (at-least-once into the log, exactly-once to subscribers by aedes).
//   QoS 0: appended too (every accepted message is in the log), but nothing waits for the flush:
//          there is no ack to delay, and a QoS 0 sender accepted loss.
//   Wills are appended when they are published (aedes runs them through authorizePublish).
//   $SYS/ and other broker-internal publishes are not appended (they bypass authorizePublish).
// A failed append (TRIB_ERR_LOG_IO, disk full, record too large, log closed) acks nothing: the
// client's connection is closed and the event logged. The publisher resends after reconnecting.
import type { Duplex } from 'node:stream'
import type { IncomingMessage } from 'node:http'
import { performance } from 'node:perf_hooks'
import { Aedes, type AedesOptions, type Client, type PublishPacket, type Subscription } from 'aedes'
import type { AppendInput, AppendResult, DurableCallback, QoS } from '../commitlog/types.js'
import { isTributaryError } from '../errors/index.js'
import type { Logger } from '../log/index.js'
import { DurableQueue, type AckCallback } from './durable-queue.js'
import { EarlyRouting } from './early-routing.js'
import { ReadAhead } from './read-ahead.js'
import { checkTopic, ConnectionGate, limitPacketSize, patchParserPrototype } from './limits.js'
import { installCorkedWrites, markBatched } from './corked-writes.js'
import { installSyncDelivery, loadSyncDelivery } from './sync-delivery.js'

// What the broker needs of the commitlog (src/commitlog's CommitLog satisfies it).
export interface DurableAppender {
  // Synchronous; `onDurable` fires once per append, in append order. Throws when the record
  // cannot even be queued (too large, log closed).
  append (input: AppendInput, onDurable: DurableCallback): AppendResult
}

export interface BrokerLimits {
  maxPacketBytes: number
  maxConnections: number
  inflightWindow: number
  maxTopicLength: number
  maxTopicLevels: number
  connectTimeoutMs: number
}

export interface BrokerDeps {
  log: DurableAppender
  // An aedes-persistence 11 instance (src/mqtt/persistence.ts over the commitlog, or aedes' memory one).
  persistence?: unknown
  config: BrokerLimits
  logger: Logger
  // Told the log offset of each appended client PUBLISH (before aedes routes it), so a
  // persistence can keep offline queues as cursors into the log instead of copies.
  onAppended?: (packet: PublishPacket, result: AppendResult) => void
  // Observes seconds from append to durable for acked (QoS > 0) publishes; for metrics.
  observeAckSeconds?: (seconds: number) => void
}

// Plain counters, read by /metrics at scrape time (nothing per message beyond an increment).
export class BrokerStats {
  publishesIn = 0
  payloadBytesIn = 0
  appended = 0
  appendFailures = 0
  clientErrors = 0
  packetTooLarge = 0
}

export interface TributaryBroker {
  readonly aedes: Aedes
  readonly stats: BrokerStats
  readonly gate: ConnectionGate
  // Hand a new connection (net/tls socket or a ws stream) to the broker; refused past maxConnections.
  handle: (conn: Duplex, req?: IncomingMessage) => void
  close: () => Promise<void>
}

const SYS_PREFIX = '$SYS/'
// aedes' qlobber tries cannot hold more than 100 levels (aedes clamps to it).
const AEDES_MAX_TOPIC_LEVELS = 100
// At most one log line per this many ms for events that a misbehaving fleet can repeat at line
// rate (refused connections, failed appends); the count since the last line is included.
const NOISY_LOG_INTERVAL_MS = 1000

interface AedesClientInternals {
  _parser?: unknown
  _inboundInflight?: Set<number>
}

class Throttle {
  private last = 0
  suppressed = 0
  ready (now: number): boolean {
    if (now - this.last < NOISY_LOG_INTERVAL_MS) { this.suppressed++; return false }
    this.last = now
    return true
  }

  take (): number { const n = this.suppressed; this.suppressed = 0; return n }
}

export async function createBroker (deps: BrokerDeps): Promise<TributaryBroker> {
  const { log, config, logger } = deps
  const maxTopicLevels = Math.min(config.maxTopicLevels, AEDES_MAX_TOPIC_LEVELS)
  const stats = new BrokerStats()
  const gate = new ConnectionGate(config.maxConnections)
  const pending = new DurableQueue()
  // Reads a publisher's next packets while its QoS 1 PUBACKs wait for the fsync (read-ahead.ts).
  const readAhead = new ReadAhead()
  const onAppended = deps.onAppended
  const observeAckSeconds = deps.observeAckSeconds
  const appendFailureLog = new Throttle()
  const refusedLog = new Throttle()
  const routeFailureLog = new Throttle()

  // The single durable callback for every append: pops the oldest waiting ack (see durable-queue.ts).
  function onDurable (err: Error | null): void {
    const callback = pending.shift()
    if (err !== null) {
      stats.appendFailures++
      logAppendFailure(err)
      if (callback !== null) callback(err)
      return
    }
    if (callback !== null) {
      if (observeAckSeconds !== undefined) observeAckSeconds((performance.now() - pending.startedAtOfShifted) / 1000)
      callback(null)
    }
  }

  function logAppendFailure (err: unknown): void {
    if (!appendFailureLog.ready(Date.now())) return
    const code = isTributaryError(err) ? err.code : 'TRIB_ERR_LOG_IO'
    logger.error({ code, err, suppressed: appendFailureLog.take() }, 'commitlog append failed: publish refused, client disconnected, nothing acked')
  }

  function authorizePublish (client: Client | null, packet: PublishPacket, callback: (error?: Error | null) => void): void {
    const topic = packet.topic
    if (topic.startsWith(SYS_PREFIX)) { callback(new Error(SYS_PREFIX + ' topic is reserved')); return }
    // aedes' own limit, so that aedes.publish below cannot refuse the topic (a will is not checked
    // by aedes' PUBLISH handler before it gets here).
    const topicError = checkTopic(topic, config.maxTopicLength, maxTopicLevels)
    if (topicError !== undefined) { callback(topicError); return }
    const qos = packet.qos
    // A QoS 2 retransmission (DUP) of a message already stored and awaiting PUBREL: aedes answers
    // it with PUBREC from its incoming store; appending it again would duplicate the record.
    if (qos === 2 && client !== null && (client as unknown as AedesClientInternals)._inboundInflight?.has(packet.messageId ?? -1) === true) {
      callback(null)
      return
    }
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload)
    stats.publishesIn++
    stats.payloadBytesIn += payload.length
    const input: AppendInput = { topic, payload, qos: qos as QoS, retain: packet.retain, clientId: client?.id ?? '' }
    pending.push(qos === 0 ? null : callback as AckCallback, observeAckSeconds === undefined ? 0 : performance.now())
    if (qos === 1) early.claim(packet)
    let result: AppendResult
    try {
      result = log.append(input, onDurable)
    } catch (err) {
      pending.popLast()
      if (qos === 1) early.release(packet, err as Error)
      stats.appendFailures++
      logAppendFailure(err)
      callback(err as Error)
      return
    }
    stats.appended++
    if (onAppended !== undefined) onAppended(packet, result)
    if (qos === 0) callback(null)
    else if (qos === 1) { early.route(packet, client); readAhead.appended(client) }
  }

  function authorizeSubscribe (client: Client, sub: Subscription, callback: (error: Error | null, subscription?: Subscription | null) => void): void {
    const err = checkTopic(sub.topic, config.maxTopicLength, config.maxTopicLevels)
    if (err !== undefined) {
      logger.warn({ code: err.code, clientId: client.id, topic: sub.topic.slice(0, 200) }, `subscription refused: ${err.message}`)
      // [MQTT-3.9.3] a refused subscription is answered with return code 0x80 (null here), the
      // connection stays up.
      callback(null, null)
      return
    }
    callback(null, sub)
  }

  const options: AedesOptions = {
    persistence: deps.persistence,
    // Bounds a client's unacked inbound QoS 2 messages (stored awaiting PUBREL). Inbound QoS 1 is
    // bounded by aedes itself: it reads the next chunk of a socket only after every packet of the
    // current chunk is done, and ours wait for the durable append, so at most one socket read
    // (16 KiB readable high-water mark + one 64 KiB read) of PUBLISH packets is in flight.
    maxInflightInbound: config.inflightWindow,
    maxTopicLevels: Math.min(config.maxTopicLevels, AEDES_MAX_TOPIC_LEVELS),
    connectTimeout: config.connectTimeoutMs,
    authorizePublish,
    authorizeSubscribe
  }
  const aedes = await Aedes.createBroker(options)
  const early = new EarlyRouting(aedes, (err) => {
    if (!routeFailureLog.ready(Date.now())) return
    logger.error({ err, suppressed: routeFailureLog.take() }, 'routing a published message failed')
  })
  patchParserPrototype()
  installCorkedWrites()
  await loadSyncDelivery()

  function logClientError (client: Client | null, err: Error & { code?: string }): void {
    stats.clientErrors++
    const code = classifyClientError(err)
    if (code === undefined) {
      // Peer resets and closed sockets are routine on a network of devices.
      logger.debug({ clientId: client?.id ?? undefined, err: err.message }, 'client connection error')
      return
    }
    if (code === 'TRIB_ERR_MQTT_PACKET_TOO_LARGE') stats.packetTooLarge++
    logger.warn({ code, clientId: client?.id ?? undefined, err: err.message }, 'client connection closed')
  }
  aedes.on('clientError', logClientError)
  aedes.on('connectionError', logClientError)

  function handle (conn: Duplex, req?: IncomingMessage): void {
    if (!gate.admit(conn)) {
      if (refusedLog.ready(Date.now())) {
        logger.warn({ code: 'TRIB_ERR_MQTT_TOO_MANY_CONNECTIONS', maxConnections: gate.maxConnections, refusedSinceLastLog: refusedLog.take() + 1 }, 'connection refused: at maxConnections')
      }
      return
    }
    // Acks and deliveries to this connection leave in one write per loop turn (corked-writes.ts).
    markBatched(conn)
    const client = aedes.handle(conn, req) as unknown as AedesClientInternals
    limitPacketSize(client, config.maxPacketBytes)
    // QoS 1/2 deliveries written in the turn that routes them (sync-delivery.ts).
    installSyncDelivery(client)
  }

  async function close (): Promise<void> {
    await new Promise<void>((resolve) => { aedes.close(() => { resolve() }) })
  }

  return { aedes, stats, gate, handle, close }
}

// Maps what aedes and mqtt-packet report to our error codes; undefined = routine network noise.
function classifyClientError (err: Error & { code?: string }): string | undefined {
  if (isTributaryError(err)) return err.code
  if (typeof err.code === 'string' && err.code.startsWith('TRIB_ERR_')) return err.code
  const m = err.message
  if (m === 'connect did not arrive in time') return 'TRIB_ERR_MQTT_CONNECT_TIMEOUT'
  if (m.startsWith('maxInflightInbound exceeded')) return 'TRIB_ERR_MQTT_INFLIGHT_FULL'
  if (m.includes('too many levels')) return 'TRIB_ERR_MQTT_TOPIC_INVALID'
  if (m === 'Invalid protocol' || m.includes('not allowed in PUBLISH') || m === 'Client queue limit reached') return 'TRIB_ERR_MQTT_MALFORMED'
  return undefined
}

