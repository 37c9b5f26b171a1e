// One socket write per connection per event-loop turn instead of one per packet.
//
// aedes writes every packet (each PUBACK, each delivery) with mqtt-packet's writeToStream, which
// corks the stream only until process.nextTick; aedes runs each delivery in its own setImmediate
// (QoS 0 ones still; QoS 1/2 ones now run during routing, sync-delivery.ts, several per turn),
// so every packet still became its own writev(2) syscall and TCP segment (in a CPU profile of QoS 1
// fan-in, writev alone was ~20% of the broker's time). Here the first write to a broker
// connection in a turn corks it, and one shared setImmediate uncorks every connection corked in
// that turn: the acks and deliveries produced by one group commit (or one socket read) leave in
// one write. Latency cost: at most until the check phase of the current loop turn (or the next
// one, when the write itself ran in an immediate), i.e. tens of microseconds.
//
// Only streams marked by markBatched (the broker's client connections) are corked, so the `mqtt`
// client library in the same process (which also writes through writeToStream) is unaffected.
// Installed once per process, on the mqtt-packet module object aedes resolves (like the parser
// patch in limits.ts); no closure or allocation per connection or per packet.
import { createRequire } from 'node:module'
import { encodeHotPacket } from './fast-encode.js'

interface BatchedStream {
  cork: () => void
  uncork: () => void
  destroyed: boolean
  writableCorked: number
  _tribBatch?: boolean
  _tribCorked?: boolean
}

type WriteToStream = (packet: unknown, stream: BatchedStream, opts?: unknown) => boolean

let installed = false
let corked: BatchedStream[] = []
// The list being uncorked is swapped with this spare one, so a write made while uncorking
// (a drain callback writing again) lands in a fresh list instead of being lost.
let spare: BatchedStream[] = []
let flushScheduled = false

function uncorkAll (): void {
  flushScheduled = false
  const list = corked
  corked = spare
  spare = list
  for (let i = 0; i < list.length; i++) {
    const s = list[i] as BatchedStream
    s._tribCorked = false
    if (s.writableCorked > 0) s.uncork()
  }
  list.length = 0
}

export function installCorkedWrites (): void {
  if (installed) return
  // aedes imports mqtt-packet; resolve the same module object it does.
  const require = createRequire(import.meta.url)
  const mqttPacket = require('mqtt-packet') as { writeToStream: WriteToStream }
  const original = mqttPacket.writeToStream
  mqttPacket.writeToStream = function writeToStreamCorked (packet: unknown, stream: BatchedStream, opts?: unknown): boolean {
    if (stream._tribBatch === true && stream._tribCorked !== true && !stream.destroyed) {
      stream.cork()
      stream._tribCorked = true
      corked.push(stream)
      if (!flushScheduled) { flushScheduled = true; setImmediate(uncorkAll) }
    }
    if (stream._tribBatch === true) {
      // PUBLISH and the acks as one buffer, one write (fast-encode.ts); the rest as before.
      const buf = encodeHotPacket(packet, (opts as { protocolVersion?: number } | undefined)?.protocolVersion)
      if (buf !== undefined) return (stream as unknown as { write: (b: Buffer) => boolean }).write(buf)
    }
    return original(packet, stream, opts)
  }
  installed = true
}

// Marks a broker connection: its packet writes are batched per loop turn.
export function markBatched (conn: object): void {
  (conn as BatchedStream)._tribBatch = true
}
