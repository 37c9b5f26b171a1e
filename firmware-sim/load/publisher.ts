// A load-mode publisher: preallocated PUBLISH packets with the accounting header, stamped in
// place (sequence number, send time) just before they are written. QoS 0 writes chunks of
// packets while the socket accepts them; QoS 1 keeps a window of slots, one per packet id, and
// refills a slot when its PUBACK arrives (so a slot's bytes are never rewritten while unsent).
import { PUBACK, writePublishHeader, publishSize } from '../mqtt/codec.js'
import { OFFSET_SENT_AT, OFFSET_SEQ, nowMs, writeBinaryHeader } from '../payload.js'
import { RawConnection } from './connection.js'

// 256 packets of ~90 bytes = ~23 KiB per write: large enough to amortize the syscall, small
// enough to keep the subscriber side interleaved. 4 chunks in flight per connection.
const CHUNK_PACKETS = 256
const CHUNKS = 4
// A pump writes at most this many chunks before yielding to the event loop (receivers, timers).
const CHUNKS_PER_TURN = 8
// QoS 0 paced mode: a ring of single-packet slots; at paced rates a slot is long flushed
// before it comes round again.
const RING_SLOTS = 1024

interface Chunk { buf: Buffer, free: boolean, done: () => void }

export class LoadPublisher extends RawConnection {
  published = 0
  acked = 0
  private seq = 0
  running = false
  private readonly packetBytes: number
  private readonly payloadAt: number
  private readonly chunks: Chunk[] = []
  private readonly slots: Buffer[] = []
  private readonly freeSlots: number[] = []
  private ringNext = 0
  private waitingDrain = false
  private pumpScheduled = false
  private readonly pumpBound: () => void

  constructor (readonly index: number, private readonly runId: number, topic: Buffer, payloadBytes: number, readonly qos: 0 | 1, private readonly window: number, private readonly paced: boolean) {
    super()
    this.packetBytes = publishSize(topic.length, payloadBytes, qos)
    this.pumpBound = () => { this.pumpScheduled = false; this.pump() }
    const template = Buffer.alloc(this.packetBytes)
    this.payloadAt = writePublishHeader(template, 0, topic, payloadBytes, qos, 1, false)
    writeBinaryHeader(template, this.payloadAt, runId, index, 0, 0)
    if (qos === 0 && !paced) {
      for (let c = 0; c < CHUNKS; c++) {
        const buf = Buffer.allocUnsafe(this.packetBytes * CHUNK_PACKETS)
        for (let i = 0; i < CHUNK_PACKETS; i++) template.copy(buf, i * this.packetBytes)
        const chunk: Chunk = { buf, free: true, done: () => { chunk.free = true; this.schedulePump() } }
        this.chunks.push(chunk)
      }
    } else {
      const n = qos === 1 ? window : RING_SLOTS
      const all = Buffer.allocUnsafe(this.packetBytes * n)
      for (let i = 0; i < n; i++) {
        const slot = all.subarray(i * this.packetBytes, (i + 1) * this.packetBytes)
        template.copy(slot)
        if (qos === 1) slot.writeUInt16BE(i + 1, this.payloadAt - 2) // packet id = slot + 1
        this.slots.push(slot)
        this.freeSlots.push(n - 1 - i)
      }
    }
  }

  start (): void {
    this.running = true
    this.socket.on('drain', () => { this.waitingDrain = false; this.schedulePump() })
    if (!this.paced) this.pump()
  }

  private schedulePump (): void {
    if (this.pumpScheduled || !this.running || this.paced) return
    this.pumpScheduled = true
    setImmediate(this.pumpBound)
  }

  private stamp (buf: Buffer, at: number, now: number): void {
    buf.writeUInt32BE(++this.seq, at + OFFSET_SEQ)
    buf.writeDoubleBE(now, at + OFFSET_SENT_AT)
  }

  // Max-rate sending.
  private pump (): void {
    if (!this.running || this.waitingDrain || this.closed) return
    if (this.qos === 1) { this.refill(); return }
    let turns = 0
    for (const chunk of this.chunks) {
      if (!chunk.free) continue
      const now = nowMs()
      for (let i = 0; i < CHUNK_PACKETS; i++) this.stamp(chunk.buf, i * this.packetBytes + this.payloadAt, now)
      chunk.free = false
      this.published += CHUNK_PACKETS
      if (!this.socket.write(chunk.buf, chunk.done)) { this.waitingDrain = true; return }
      if (++turns >= CHUNKS_PER_TURN) break
    }
  }

  // QoS 1 max rate: fill every free slot of the window, in one corked write.
  private refill (): void {
    if (this.freeSlots.length === 0) return
    this.socket.cork()
    while (this.freeSlots.length > 0) this.sendSlot(this.freeSlots.pop()!)
    this.socket.uncork()
  }

  private sendSlot (slot: number): void {
    const buf = this.slots[slot]
    this.stamp(buf, this.payloadAt, nowMs())
    this.published++
    this.socket.write(buf)
  }

  // Paced mode: send one message if the window allows; false when it does not (backlog).
  sendOne (): boolean {
    if (this.closed) return false
    if (this.qos === 1) {
      const slot = this.freeSlots.pop()
      if (slot === undefined) return false
      this.sendSlot(slot)
      return true
    }
    // A slot is reused RING_SLOTS packets later; the socket holds a reference (not a copy) until
    // the bytes are written, so refuse (backlog) while more than the other slots are still queued.
    if (this.socket.writableLength > (this.slots.length - 1) * this.slots[0].length) return false
    const buf = this.slots[this.ringNext]
    this.ringNext = this.ringNext + 1 === this.slots.length ? 0 : this.ringNext + 1
    this.stamp(buf, this.payloadAt, nowMs())
    this.published++
    this.socket.write(buf)
    return true
  }

  protected onMessage (type: number, _flags: number, buf: Buffer, start: number): void {
    if (type !== PUBACK) return
    const packetId = buf.readUInt16BE(start)
    if (packetId < 1 || packetId > this.slots.length) return
    this.acked++
    this.freeSlots.push(packetId - 1)
  }

  protected override afterChunk (): void {
    if (this.qos === 1 && this.running && !this.paced) this.refill()
  }

  get inflight (): number { return this.qos === 1 ? this.slots.length - this.freeSlots.length : 0 }
}
