// Where a published message lives in the commitlog, passed from the broker's append hook to the
// persistence adapter without copying anything.
//
// aedes copies a PUBLISH packet several times on its way (Packet, QoSPacket, per subscription) but
// every copy keeps the same `payload` Buffer object. So the broker, right after appending the
// record (src/mqtt/broker.ts, `onAppended`), remembers the record's position keyed by that Buffer,
// and the persistence (src/mqtt/persistence.ts) looks it up in outgoingEnqueue/outgoingUpdate.
// A symbol-keyed property of the payload: it disappears with the payload, nothing to clean up, no
// per-message allocation (the AppendResult the log returned is the value). Not a WeakMap: one entry
// per message with a short-lived key in a long-lived WeakMap made every young-generation GC walk
// the table (perf: WeakMap.set in the publish path, scavenges of ~2 ms at 5,000 msgs/s).
//
// Packets without an entry (string payloads, $SYS, API publishes that bypass the log) are simply
// "not log-backed": the persistence stores a copy for them.
import type { AppendResult } from '../commitlog/types.js'

export interface LogPosition {
  // First byte of the record: its identity in the log.
  readonly offset: number
  // Just past the record: where a reader continues.
  readonly nextOffset: number
}

const POSITION = Symbol('tributary.logPosition')

interface Positioned { [POSITION]?: LogPosition }

export function rememberLogPosition (payload: unknown, position: LogPosition): void {
  if (typeof payload === 'object' && payload !== null) (payload as Positioned)[POSITION] = position
}

export function logPositionOf (payload: unknown): LogPosition | undefined {
  if (typeof payload !== 'object' || payload === null) return undefined
  return (payload as Positioned)[POSITION]
}

// Has the shape of BrokerDeps.onAppended (src/mqtt/broker.ts): pass it as `onAppended`.
export function recordAppended (packet: { payload: unknown }, result: AppendResult): void {
  rememberLogPosition(packet.payload, result)
}
