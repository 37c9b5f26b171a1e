// QoS 1 and 2 deliveries are written in the event-loop turn that routes them.
//
// aedes' Client.deliverQoS (lib/client.js) checks whether a packet goes to the client (no-local,
// its dedupe counter, authorizeForward) and then does the rest in a setImmediate of its own:
// build the QoSPacket (packet identifier), downgrade to the subscription's QoS, record it in the
// persistence (persistent sessions), write it. With the broker's corked writes (corked-writes.ts)
// a write made inside an immediate is flushed by the NEXT turn's check phase, after that turn has
// processed every I/O event that arrived meanwhile. So each QoS 1 delivery waited one extra loop
// turn, behind other messages. In the latency cell (QoS 1, 5,000 msgs/s) that extra turn was about
// half of the edge's p99 (8 alternating runs, p99 median 0.995 -> 0.558 ms; BENCHMARKS.md, Broker
// "Session 5, after deliveries in the routing turn").
//
// `deliverNow` keeps aedes' rules and its own pieces (its QoSPacket class and write function,
// loaded from the installed aedes) and drops the deferral. One rule is corrected: aedes lowers a
// delivery to the subscription's QoS only when the subscription is the exact topic (it looks up
// `subscriptions[topic]`), so a QoS 2 message reached a QoS 1 wildcard subscription at QoS 2;
// here it goes out at the highest QoS granted by the client's matching filters [MQTT-3.8.4-6]. The stack stays flat without it:
// a write's callback always comes later (aedes' write calls back from a setImmediate, or on
// 'drain'), and a persistent session's outgoingUpdate is a promise. Order is kept: mqemitter calls
// the deliveries in routing order, and they now run (and write, or call outgoingUpdate, whose
// promises resolve in call order) in that same order. QoS 0 deliveries keep aedes' path.
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { topicMatches } from './persistence/topic-match.js'

type Callback = (err?: Error | null) => void

interface RoutedPacket {
  qos: number
  topic: string
  retain?: boolean
  brokerId?: string
  brokerCounter?: number
  clientId?: string
  nl?: boolean
}

interface QoSPacketLike { qos: number, topic: string, retain: boolean, writeCallback: Callback }

interface ClientInternals {
  id: string
  clean: boolean
  duplicates: Record<string, number>
  subscriptions: Record<string, { qos?: number } | undefined>
  broker: {
    authorizeForward: (client: ClientInternals, packet: RoutedPacket) => RoutedPacket | null | undefined | false
    persistence: {
      outgoingUpdate: (client: ClientInternals, packet: QoSPacketLike) => Promise<void>
      outgoingClearMessageId: (client: ClientInternals, packet: RoutedPacket) => Promise<unknown>
    }
  }
  deliver0: (packet: RoutedPacket, cb: Callback) => void
  deliverQoS: (packet: RoutedPacket, cb: Callback) => void
  emit: (event: 'error', err: Error) => boolean
}

type QoSPacketClass = new (original: RoutedPacket, client: ClientInternals) => QoSPacketLike
type WriteFn = (client: ClientInternals, packet: QoSPacketLike, done: (err: Error | null) => void) => void

let QoSPacket: QoSPacketClass | undefined
let writePacket: WriteFn | undefined

// aedes exports only its main module; its lib files are loaded by path from the installed copy
// (the one the broker runs), once per process.
export async function loadSyncDelivery (): Promise<void> {
  if (QoSPacket !== undefined) return
  const aedesDir = dirname(createRequire(import.meta.url).resolve('aedes'))
  const load = async (file: string): Promise<unknown> => ((await import(pathToFileURL(join(aedesDir, 'lib', file)).href)) as { default: unknown }).default
  writePacket = await load('write.js') as WriteFn
  QoSPacket = await load('qos-packet.js') as QoSPacketClass
}

// Replaces one client's deliverQoS; call right after aedes.handle(), before it subscribes
// (aedes' SUBSCRIBE handler takes `client.deliverQoS` when the subscription is made).
export function installSyncDelivery (client: object): void {
  if (QoSPacket === undefined) throw new Error('loadSyncDelivery() must complete first')
  const c = client as ClientInternals
  c.deliverQoS = function deliverNow (packet: RoutedPacket, cb: Callback): void {
    if (packet.qos === 0) { c.deliver0(packet, cb); return }
    const forwarded = forwardable(c, packet)
    if (forwarded === null) {
      // Not for this client: a persistent session forgets it (aedes does the same).
      if (!c.clean) c.broker.persistence.outgoingClearMessageId(c, packet).then(noop, noop)
      setImmediate(cb)
      return
    }
    const out = new (QoSPacket as QoSPacketClass)(forwarded, c)
    // QoS 1 needs no check: a QoS 0 subscription routes to deliver0, never here.
    if (out.qos === 2 && highestGrantedQos(c, out.topic) === 1) out.qos = 1
    out.writeCallback = cb
    if (c.clean || out.retain) { writeOut(c, out, null); return }
    c.broker.persistence.outgoingUpdate(c, out).then(() => { writeOut(c, out, null) }, (err: Error) => { writeOut(c, out, err) })
  }
}

// What aedes forwards: not the client's own message when it asked for no-local, not one its
// dedupe counter has seen (a broker's counter only grows), and what authorizeForward returns.
function forwardable (c: ClientInternals, packet: RoutedPacket): RoutedPacket | null {
  if (packet.nl === true && packet.clientId === c.id) return null
  const brokerId = packet.brokerId
  if (brokerId !== undefined && brokerId !== '') {
    const counter = packet.brokerCounter ?? 0
    if ((c.duplicates[brokerId] ?? 0) >= counter) return null
    c.duplicates[brokerId] = counter
  }
  const allowed = c.broker.authorizeForward(c, packet)
  return allowed === undefined || allowed === null || allowed === false ? null : allowed
}

// The highest QoS granted to the client's subscriptions matching `topic`; -1 if none matches
// (the message came another way, e.g. the API's client.publish: it keeps its QoS, as it does when
// only a QoS 0 filter matches, which aedes never routes here).
function highestGrantedQos (c: ClientInternals, topic: string): number {
  let best = -1
  for (const filter in c.subscriptions) {
    const qos = c.subscriptions[filter]?.qos ?? 0
    if (qos > best && topicMatches(filter, topic)) best = qos
  }
  return best
}

// An error reaches the client's error handling (aedes closes it); the delivery's callback runs
// either way, without the error, which mqemitter would throw.
function writeOut (c: ClientInternals, packet: QoSPacketLike, err: Error | null): void {
  if (err !== null) {
    c.emit('error', err)
    packet.writeCallback()
    return
  }
  ;(writePacket as WriteFn)(c, packet, (writeErr) => {
    if (writeErr !== null) c.emit('error', writeErr)
    packet.writeCallback()
  })
}

function noop (): void {}
