// The latency floor of a Node.js process in the broker bench: an MQTT 3.1.1 "broker" that does
// only what the latency cell needs and nothing a real broker must do (no persistence, no log, no
// topic matching, no sessions, no keepalive, no limits): every PUBLISH goes to every subscriber,
// a QoS 1 PUBLISH is acked at once. Not a product and not a peer to beat; it answers "how low can
// any broker running on Node go in this harness", which tells whether a latency gap to mosquitto
// is the broker's or the runtime's.
//
// Two parsers (argv[2]):
//   raw          frames packets by hand and forwards the incoming PUBLISH bytes with a new
//                packet id: no object, no allocation beyond the copy per delivery;
//   mqtt-packet  parses with mqtt-packet (the parser aedes uses, fixed by the design card) with
//                the edge's own patches to it (src/mqtt/limits.ts: allocation-free reads), and
//                encodes by hand (like the edge's fast-encode), so only the parser differs.
// Both write each packet at once (one write per packet, like mosquitto) with TCP_NODELAY.
// Usage: node --import tsx test/bench/node-floor.ts raw|mqtt-packet [port]  -> {"event":"ready","mqttPort":N}
import { createServer, type Socket } from 'node:net'
import mqttPacket, { type Packet } from 'mqtt-packet'
import { patchParserPrototype } from '../../src/mqtt/limits.js'

const mode = process.argv[2]
if (mode !== 'raw' && mode !== 'mqtt-packet') {
  process.stderr.write('usage: node-floor.ts raw|mqtt-packet [port]\n')
  process.exit(2)
}

const CONNACK = Buffer.from([0x20, 2, 0, 0])
const PINGRESP = Buffer.from([0xd0, 0])
const subscribers = new Set<Socket>()
let nextPacketId = 0

function takePacketId (): number {
  nextPacketId = nextPacketId === 0xffff ? 1 : nextPacketId + 1
  return nextPacketId
}

function puback (id: number): Buffer { return Buffer.from([0x40, 2, id >> 8, id & 0xff]) }

// SUBACK granting what was asked (the bench subscribes with one filter).
function suback (id: number, granted: number[]): Buffer { return Buffer.from([0x90, 2 + granted.length, id >> 8, id & 0xff, ...granted]) }

function subscribe (socket: Socket): void {
  subscribers.add(socket)
  socket.once('close', () => { subscribers.delete(socket) })
}

// raw: [type/flags][remaining length varint][variable header + payload]
function rawConnection (socket: Socket): void {
  let rest: Buffer | null = null
  socket.on('data', (chunk: Buffer) => {
    const buf = rest === null ? chunk : Buffer.concat([rest, chunk])
    rest = null
    let at = 0
    while (at < buf.length) {
      let length = 0; let multiplier = 1; let body = at + 1; let byte: number
      do {
        if (body >= buf.length) { rest = buf.subarray(at); return }
        byte = buf[body++]
        length += (byte & 0x7f) * multiplier
        multiplier *= 128
      } while ((byte & 0x80) !== 0)
      if (body + length > buf.length) { rest = buf.subarray(at); return }
      const type = buf[at] >> 4
      if (type === 1) socket.write(CONNACK)
      else if (type === 8) {
        const granted: number[] = []
        for (let i = body + 2; i < body + length;) { const n = buf.readUInt16BE(i); i += 2 + n; granted.push(Math.min(buf[i++], 1)) }
        subscribe(socket)
        socket.write(suback(buf.readUInt16BE(body), granted))
      } else if (type === 12) socket.write(PINGRESP)
      else if (type === 14) socket.end()
      else if (type === 3) {
        const qos = (buf[at] >> 1) & 3
        const idAt = body + 2 + buf.readUInt16BE(body)
        for (const s of subscribers) {
          const copy = Buffer.from(buf.subarray(at, body + length))
          if (qos > 0) copy.writeUInt16BE(takePacketId(), idAt - at)
          s.write(copy)
        }
        if (qos === 1) socket.write(puback(buf.readUInt16BE(idAt)))
      }
      at = body + length
    }
  })
}

function encodePublish (topic: string, payload: Buffer, qos: number): Buffer {
  const topicBytes = Buffer.byteLength(topic)
  const remaining = 2 + topicBytes + (qos > 0 ? 2 : 0) + payload.length
  const lengthBytes = remaining < 128 ? 1 : remaining < 16384 ? 2 : 3
  const out = Buffer.allocUnsafe(1 + lengthBytes + remaining)
  let at = 0
  out[at++] = 0x30 | (qos << 1)
  for (let n = remaining, i = 0; i < lengthBytes; i++) { out[at++] = (n & 0x7f) | (i < lengthBytes - 1 ? 0x80 : 0); n >>= 7 }
  out.writeUInt16BE(topicBytes, at); at += 2
  at += out.write(topic, at)
  if (qos > 0) { out.writeUInt16BE(takePacketId(), at); at += 2 }
  payload.copy(out, at)
  return out
}

function mqttPacketConnection (socket: Socket): void {
  const parser = mqttPacket.parser()
  parser.on('packet', (packet: Packet) => {
    switch (packet.cmd) {
      case 'connect': socket.write(CONNACK); break
      case 'subscribe':
        subscribe(socket)
        socket.write(suback(packet.messageId ?? 0, packet.subscriptions.map((sub) => Math.min(sub.qos, 1))))
        break
      case 'publish':
        for (const s of subscribers) s.write(encodePublish(packet.topic, packet.payload as Buffer, Math.min(packet.qos, 1)))
        if (packet.qos === 1) socket.write(puback(packet.messageId as number))
        break
      case 'pingreq': socket.write(PINGRESP); break
      case 'disconnect': socket.end(); break
    }
  })
  parser.on('error', () => { socket.destroy() })
  socket.on('data', (chunk: Buffer) => { parser.parse(chunk) })
}

if (mode === 'mqtt-packet') patchParserPrototype()

const server = createServer((socket) => {
  socket.setNoDelay(true)
  socket.on('error', () => {})
  if (mode === 'raw') rawConnection(socket)
  else mqttPacketConnection(socket)
})
server.listen(Number(process.argv[3] ?? 0), '127.0.0.1', () => {
  const address = server.address()
  process.stdout.write(JSON.stringify({ event: 'ready', mqttPort: typeof address === 'object' && address !== null ? address.port : 0, pid: process.pid }) + '\n')
})
process.on('SIGTERM', () => { server.close(); process.exit(0) })
