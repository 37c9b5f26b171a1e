// One-buffer encoding of the packets a broker writes per message: PUBLISH and the QoS acks
// (PUBACK, PUBREC, PUBREL, PUBCOMP), MQTT 3.1 / 3.1.1 only.
//
// Why: mqtt-packet's writeToStream writes a PUBLISH as five or six separate stream.write() calls
// (header, length, topic length, topic string, packet id, payload), each with debug() calls and a
// process.nextTick uncork; every write is a buffered write request on a corked socket. In a heap
// profile of the QoS 1 latency cell that stream machinery was ~1.9 KB of garbage per message, and
// young-generation garbage is what sets the broker's GC pauses (its p99). Here a packet is one
// Buffer (from Node's shared pool when small) and one write.
//
// Everything else (MQTT 5, CONNACK, SUBACK, ... and any packet that would fail validation) returns
// undefined and is left to mqtt-packet, so its error handling (destroying the stream) is unchanged.
// The byte layout follows the MQTT 3.1.1 specification, sections 2.2 and 3.3 to 3.7.

import { MAX_REMAINING_LENGTH, remainingLengthBytes, writeRemainingLength } from '../protocol/mqtt-remaining-length.js'

// Fixed-header type nibbles [MQTT-2.2.1].
const PUBLISH = 0x30
const PUBACK = 0x40
const PUBREC = 0x50
// PUBREL has reserved flags 0010 [MQTT-3.6.1-1].
const PUBREL = 0x62
const PUBCOMP = 0x70

interface PacketLike {
  cmd?: unknown
  qos?: unknown
  dup?: unknown
  retain?: unknown
  topic?: unknown
  payload?: unknown
  messageId?: unknown
  properties?: unknown
}

function validPacketId (id: unknown): id is number {
  return typeof id === 'number' && Number.isInteger(id) && id >= 0 && id <= 0xffff
}

function encodePublish (p: PacketLike): Buffer | undefined {
  const qos = p.qos === undefined || p.qos === null ? 0 : p.qos
  if (qos !== 0 && qos !== 1 && qos !== 2) return undefined
  const topic = p.topic
  if (typeof topic !== 'string' || p.properties !== undefined) return undefined
  const payload = p.payload === undefined || p.payload === null ? EMPTY : p.payload
  const payloadIsString = typeof payload === 'string'
  if (!payloadIsString && !Buffer.isBuffer(payload)) return undefined
  if (qos > 0 && !validPacketId(p.messageId)) return undefined
  const topicBytes = Buffer.byteLength(topic)
  if (topicBytes > 0xffff) return undefined
  const payloadBytes = payloadIsString ? Buffer.byteLength(payload) : (payload as Buffer).length
  const remaining = 2 + topicBytes + (qos > 0 ? 2 : 0) + payloadBytes
  if (remaining > MAX_REMAINING_LENGTH) return undefined
  const buf = Buffer.allocUnsafe(1 + remainingLengthBytes(remaining) + remaining)
  // Truthiness, as mqtt-packet reads these flags.
  buf[0] = PUBLISH | (Boolean(p.dup) ? 0x08 : 0) | (qos << 1) | (Boolean(p.retain) ? 0x01 : 0)
  let at = writeRemainingLength(buf, 1, remaining)
  buf.writeUInt16BE(topicBytes, at)
  at += 2
  at += buf.write(topic, at, 'utf8')
  if (qos > 0) { buf.writeUInt16BE(p.messageId as number, at); at += 2 }
  if (payloadIsString) buf.write(payload, at, 'utf8')
  else (payload as Buffer).copy(buf, at)
  return buf
}

function encodeAck (type: number, p: PacketLike): Buffer | undefined {
  if (!validPacketId(p.messageId) || p.properties !== undefined) return undefined
  const buf = Buffer.allocUnsafe(4)
  buf[0] = type
  buf[1] = 2
  buf.writeUInt16BE(p.messageId, 2)
  return buf
}

const EMPTY = Buffer.alloc(0)

// The packet as one Buffer, or undefined when mqtt-packet must encode it (see above).
export function encodeHotPacket (packet: unknown, protocolVersion: number | undefined): Buffer | undefined {
  if (protocolVersion === 5 || typeof packet !== 'object' || packet === null) return undefined
  const p = packet as PacketLike
  switch (p.cmd) {
    case 'publish': return encodePublish(p)
    case 'puback': return encodeAck(PUBACK, p)
    case 'pubrec': return encodeAck(PUBREC, p)
    // mqtt-packet sets DUP on a PUBREL marked dup (an MQTT 3.1 habit): left to it, byte for byte.
    case 'pubrel': return Boolean(p.dup) ? undefined : encodeAck(PUBREL, p)
    case 'pubcomp': return encodeAck(PUBCOMP, p)
    default: return undefined
  }
}
