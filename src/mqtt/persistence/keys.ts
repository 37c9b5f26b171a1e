// MetaStore key layout of the persistence adapter. One prefix per kind of state, so a prefix scan
// loads one kind at start-up. A client id is followed by U+0000 where more follows: MQTT strings
// cannot contain U+0000 [MQTT-1.5.3-2], so `in2:abc\0` never matches client `abcd`.
//
//   sub:<clientId>\0<topic filter>  JSON { qos, rh, rap, nl, sid?, since }   subscription
//   cur:<clientId>                  float64 LE                              session cursor (log offset)
//   out:<clientId>\0<seq, 16 hex>   packet (codec.ts)                       queued copy (not log-backed)
//   will:<clientId>                 packet                                  will message
//   ret:<topic>                     packet                                  retained message
//   in2:<clientId>\0<msgId, 5 dec>  packet                                  inbound QoS 2 awaiting PUBREL
//   o2:<clientId>\0<offset, 16 hex>  u8 state, u16 BE msgId, f64 LE next     outgoing log-backed QoS 2
//
// o2: keys exist only for QoS 2 deliveries of log-backed records to persistent sessions
// (outgoing-qos2.ts): from the first PUBLISH (state 0), PUBREL (1), PUBCOMP (2, completed) until
// the session's persisted cursor has passed the record (then deleted). QoS 1 writes nothing per
// message. The hex offset keeps one client's keys in log order.
export const SEP = '\u0000'

export const PREFIX = {
  sub: 'sub:',
  cursor: 'cur:',
  outgoing: 'out:',
  will: 'will:',
  retained: 'ret:',
  incoming: 'in2:',
  outgoingQos2: 'o2:'
} as const

export function subKey (clientId: string, topic: string): string { return PREFIX.sub + clientId + SEP + topic }
export function cursorKey (clientId: string): string { return PREFIX.cursor + clientId }
export function outgoingKey (clientId: string, seq: number): string { return PREFIX.outgoing + clientId + SEP + seq.toString(16).padStart(16, '0') }
export function willKey (clientId: string): string { return PREFIX.will + clientId }
export function retainedKey (topic: string): string { return PREFIX.retained + topic }
export function incomingKey (clientId: string, messageId: number): string { return PREFIX.incoming + clientId + SEP + String(messageId).padStart(5, '0') }

export function outgoingQos2Key (clientId: string, offset: number): string { return PREFIX.outgoingQos2 + clientId + SEP + offset.toString(16).padStart(16, '0') }

// Where one outgoing QoS 2 delivery stands: what was last written to the subscriber.
export const QOS2_PUBLISHED = 0
export const QOS2_RELEASED = 1
export const QOS2_COMPLETED = 2
export type Qos2Step = typeof QOS2_PUBLISHED | typeof QOS2_RELEASED | typeof QOS2_COMPLETED

// Packet identifier, step and the record's end of one outgoing QoS 2 delivery. The end
// (nextOffset) is stored so start-up can track the entry without reading the log.
export interface OutgoingQos2State { step: Qos2Step, messageId: number, nextOffset: number }

const QOS2_STATE_BYTES = 11

export function encodeOutgoingQos2 (step: Qos2Step, messageId: number, nextOffset: number): Buffer {
  const buf = Buffer.allocUnsafe(QOS2_STATE_BYTES)
  buf.writeUInt8(step, 0)
  buf.writeUInt16BE(messageId, 1)
  buf.writeDoubleLE(nextOffset, 3)
  return buf
}

// undefined for a value of the wrong size, an unknown step or a packet identifier of 0
// [MQTT-2.3.1-1].
export function decodeOutgoingQos2 (buf: Buffer): OutgoingQos2State | undefined {
  if (buf.length !== QOS2_STATE_BYTES) return undefined
  const step = buf.readUInt8(0)
  const messageId = buf.readUInt16BE(1)
  if (step > QOS2_COMPLETED || messageId === 0) return undefined
  return { step: step as Qos2Step, messageId, nextOffset: buf.readDoubleLE(3) }
}

// Splits `<prefix><clientId>\0<rest>` into [clientId, rest].
export function splitKey (key: string, prefix: string): [string, string] {
  const at = key.indexOf(SEP, prefix.length)
  if (at < 0) return [key.slice(prefix.length), '']
  return [key.slice(prefix.length, at), key.slice(at + 1)]
}

export function encodeOffset (offset: number): Buffer {
  const buf = Buffer.allocUnsafe(8)
  buf.writeDoubleLE(offset, 0)
  return buf
}

export function decodeOffset (buf: Buffer): number {
  return buf.length === 8 ? buf.readDoubleLE(0) : 0
}
