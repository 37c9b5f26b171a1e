// A load-mode subscriber: counts deliveries, checks per-publisher sequence (gaps, out of
// order) and records publish-to-deliver latency, reading the header at fixed offsets (no
// allocation per message). QoS 1 deliveries are acked in one write per received chunk.
import type { Histogram } from 'hdr-histogram-js'
import { PUBLISH, writePuback } from '../mqtt/codec.js'
import { BINARY_MAGIC, HEADER_BYTES, OFFSET_DEVICE, OFFSET_RUN, OFFSET_SENT_AT, OFFSET_SEQ, nowMs } from '../payload.js'
import { RawConnection } from './connection.js'

// 1024 acks of 4 bytes; a chunk with more acks than that flushes midway.
const ACK_BATCH = 1024

export class LoadSubscriber extends RawConnection {
  deliveries = 0
  gaps = 0 // sequence numbers skipped (lost, or later re-sent) per publisher
  outOfOrder = 0 // a sequence number at or below one already seen from the same publisher
  foreign = 0
  firstAt = 0
  lastAt = 0
  private readonly expected: Uint32Array
  // Latency is recorded only for messages sent at or after this time (nowMs clock): the warm-up
  // before it is not measured.
  measureFrom = 0
  private acks = Buffer.allocUnsafe(ACK_BATCH * 4)
  private ackCount = 0

  constructor (private readonly runId: number, publishers: number, private readonly latencyUs: Histogram) {
    super()
    this.expected = new Uint32Array(publishers).fill(1)
  }

  protected onMessage (type: number, flags: number, buf: Buffer, start: number, end: number): void {
    if (type !== PUBLISH) return
    let at = start + 2 + buf.readUInt16BE(start)
    if ((flags & 6) !== 0) {
      writePuback(this.acks, this.ackCount * 4, buf.readUInt16BE(at))
      if (++this.ackCount === ACK_BATCH) this.flushAcks()
      at += 2
    }
    if (end - at < HEADER_BYTES || buf[at] !== BINARY_MAGIC || buf.readUInt32BE(at + OFFSET_RUN) !== this.runId) { this.foreign++; return }
    const now = nowMs()
    if (this.firstAt === 0) this.firstAt = now
    this.lastAt = now
    this.deliveries++
    const pub = buf.readUInt32BE(at + OFFSET_DEVICE)
    const seq = buf.readUInt32BE(at + OFFSET_SEQ)
    const want = this.expected[pub]
    if (seq === want) this.expected[pub] = seq + 1
    else if (seq > want) { this.gaps += seq - want; this.expected[pub] = seq + 1 } else this.outOfOrder++
    const sentAt = buf.readDoubleBE(at + OFFSET_SENT_AT)
    if (sentAt < this.measureFrom) return
    const latency = (now - sentAt) * 1000
    this.latencyUs.recordValue(latency > 0 ? Math.round(latency) : 0)
  }

  private flushAcks (): void {
    if (this.ackCount === 0) return
    // The socket keeps the buffer until written: hand it over and start a fresh one.
    this.socket.write(this.acks.subarray(0, this.ackCount * 4))
    this.acks = Buffer.allocUnsafe(ACK_BATCH * 4)
    this.ackCount = 0
  }

  protected override afterChunk (): void { this.flushAcks() }
}
