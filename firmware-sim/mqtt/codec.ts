// Minimal MQTT 3.1.1 client-side codec for the simulator's hot paths: a frame reader that cuts a
// byte stream into packets without allocating, and encoders for the packets a device sends.
// CONNECT and SUBSCRIBE are rare and go through mqtt-packet's generator (exact and tested);
// PUBLISH/PUBACK/PINGREQ are written by hand into buffers the caller may preallocate.
import mqttPacket from 'mqtt-packet'
import { remainingLengthBytes, writeRemainingLength } from '../../src/protocol/mqtt-remaining-length.js'

export const PUBLISH = 3
export const CONNACK = 2
export const PUBACK = 4
export const SUBACK = 9
export const PINGRESP = 13

// Called once per complete packet with its body at buf[start, end); the buffer is only valid
// during the call (it may be the reader's reassembly buffer).
export interface PacketSink {
  onPacket: (type: number, flags: number, buf: Buffer, start: number, end: number) => void
}

// Returns remaining length and header size packed as len * 8 + headerBytes, -1 when incomplete,
// -2 when malformed (a 5th length byte) [MQTT-2.2.3].
function readHeader (buf: Buffer, pos: number, end: number): number {
  let mult = 1
  let len = 0
  for (let i = 1; i <= 4; i++) {
    if (pos + i >= end) return -1
    const b = buf[pos + i]
    len += (b & 0x7f) * mult
    if ((b & 0x80) === 0) return len * 8 + (i + 1)
    mult *= 128
  }
  return -2
}

export class FrameReader {
  private pending: Buffer
  private pendingLen = 0
  private pendingTotal = -1
  malformed = false

  // maxPacketBytes bounds the reassembly buffer: a broker sending more is broken or hostile.
  constructor (private readonly sink: PacketSink, private readonly maxPacketBytes = 1024 * 1024) {
    this.pending = Buffer.allocUnsafe(1024)
  }

  reset (): void {
    this.pendingLen = 0
    this.pendingTotal = -1
    this.malformed = false
  }

  // Returns false when the stream is malformed or a packet is too large; the caller closes.
  push (chunk: Buffer): boolean {
    let pos = 0
    const end = chunk.length
    if (this.pendingLen > 0) {
      pos = this.completePending(chunk)
      if (pos < 0) return false
      if (this.pendingLen > 0) return true
    }
    while (pos < end) {
      const h = readHeader(chunk, pos, end)
      if (h === -2) { this.malformed = true; return false }
      if (h === -1) { this.stash(chunk, pos, end); return true }
      const headerBytes = h & 7
      const total = (h - headerBytes) / 8 + headerBytes
      if (total > this.maxPacketBytes) { this.malformed = true; return false }
      if (pos + total > end) { this.stash(chunk, pos, end); return true }
      this.sink.onPacket(chunk[pos] >> 4, chunk[pos] & 15, chunk, pos + headerBytes, pos + total)
      pos += total
    }
    return true
  }

  private stash (chunk: Buffer, pos: number, end: number): void {
    this.ensure(end - pos)
    chunk.copy(this.pending, 0, pos, end)
    this.pendingLen = end - pos
    this.pendingTotal = -1
  }

  private ensure (size: number): void {
    if (this.pending.length >= size) return
    const bigger = Buffer.allocUnsafe(Math.max(size, this.pending.length * 2))
    this.pending.copy(bigger, 0, 0, this.pendingLen)
    this.pending = bigger
  }

  // Feeds bytes of `chunk` into the pending packet; returns how many were consumed, or -1.
  private completePending (chunk: Buffer): number {
    let pos = 0
    while (this.pendingTotal < 0) {
      const h = readHeader(this.pending, 0, this.pendingLen)
      if (h === -2) { this.malformed = true; return -1 }
      if (h >= 0) {
        const headerBytes = h & 7
        this.pendingTotal = (h - headerBytes) / 8 + headerBytes
        if (this.pendingTotal > this.maxPacketBytes) { this.malformed = true; return -1 }
        break
      }
      if (pos >= chunk.length) return pos
      this.ensure(this.pendingLen + 1)
      this.pending[this.pendingLen++] = chunk[pos++]
    }
    const want = Math.min(this.pendingTotal - this.pendingLen, chunk.length - pos)
    this.ensure(this.pendingTotal)
    chunk.copy(this.pending, this.pendingLen, pos, pos + want)
    this.pendingLen += want
    pos += want
    if (this.pendingLen === this.pendingTotal) {
      const h = readHeader(this.pending, 0, this.pendingLen)
      const headerBytes = h & 7
      const total = this.pendingTotal
      this.pendingLen = 0
      this.pendingTotal = -1
      this.sink.onPacket(this.pending[0] >> 4, this.pending[0] & 15, this.pending, headerBytes, total)
    }
    return pos
  }
}


export function publishSize (topicBytes: number, payloadBytes: number, qos: number): number {
  const remaining = 2 + topicBytes + (qos > 0 ? 2 : 0) + payloadBytes
  return 1 + remainingLengthBytes(remaining) + remaining
}

// Writes a PUBLISH header (fixed header, topic, packet id) into buf at `at`; returns the offset
// where the payload goes. Packet id at (payload offset - 2) when qos > 0.
export function writePublishHeader (buf: Buffer, at: number, topic: Buffer, payloadBytes: number, qos: number, packetId: number, dup: boolean): number {
  const remaining = 2 + topic.length + (qos > 0 ? 2 : 0) + payloadBytes
  buf[at++] = 0x30 | (dup ? 0x08 : 0) | (qos << 1)
  at = writeRemainingLength(buf, at, remaining)
  buf.writeUInt16BE(topic.length, at)
  at += 2
  topic.copy(buf, at)
  at += topic.length
  if (qos > 0) { buf.writeUInt16BE(packetId, at); at += 2 }
  return at
}

export function encodePublish (topic: Buffer, payload: Buffer, qos: number, packetId: number, dup: boolean): Buffer {
  const buf = Buffer.allocUnsafe(publishSize(topic.length, payload.length, qos))
  const at = writePublishHeader(buf, 0, topic, payload.length, qos, packetId, dup)
  payload.copy(buf, at)
  return buf
}

// Where the packet id sits in a PUBLISH body (after the topic), for acking.
export function publishPacketIdOffset (buf: Buffer, start: number): number {
  return start + 2 + buf.readUInt16BE(start)
}

export function encodePuback (packetId: number): Buffer {
  const buf = Buffer.allocUnsafe(4)
  writePuback(buf, 0, packetId)
  return buf
}

export function writePuback (buf: Buffer, at: number, packetId: number): void {
  buf[at] = 0x40
  buf[at + 1] = 2
  buf[at + 2] = packetId >> 8
  buf[at + 3] = packetId & 0xff
}

export const PINGREQ_BYTES = Buffer.from([0xc0, 0])
export const DISCONNECT_BYTES = Buffer.from([0xe0, 0])

export interface ConnectOptions {
  clientId: string
  clean: boolean
  keepaliveSec: number
}

export function encodeConnect (opts: ConnectOptions): Buffer {
  return mqttPacket.generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clientId: opts.clientId,
    clean: opts.clean,
    keepalive: opts.keepaliveSec
  })
}

export function encodeSubscribe (packetId: number, filters: ReadonlyArray<{ topic: string, qos: 0 | 1 }>): Buffer {
  return mqttPacket.generate({
    cmd: 'subscribe',
    messageId: packetId,
    subscriptions: filters.map((f) => ({ topic: f.topic, qos: f.qos }))
  })
}
