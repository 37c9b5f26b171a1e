// The checker: subscribes where the messages should arrive (the broker, or the cloud end of a
// bridge under a topic prefix) and accounts per device for received, lost, duplicated and
// reordered messages, and publish-to-receive latency. Identity comes from the payload's header
// (payload.ts), not from the topic, so any topic mapping on the way does not matter.
// Duplicates (QoS 1 allows them) are counted apart from loss, never hidden.
import * as hdr from 'hdr-histogram-js'
import type { Logger } from '../src/log/index.js'
import { encodePuback, encodeSubscribe, publishPacketIdOffset } from './mqtt/codec.js'
import { Link, type LinkOwner } from './mqtt/link.js'
import type { BrokerTarget } from './mqtt/transport.js'
import { decodeStamp, nowMs, type Stamp } from './payload.js'

export class DeviceAccount {
  received = 0 // distinct sequence numbers
  deliveries = 0 // every arrival, duplicates included
  duplicates = 0
  reordered = 0
  maxSeq = 0
  // One bit per sequence number seen; grows by doubling (50 msgs = 7 bytes, 1M msgs = 128 KiB).
  private seen = new Uint8Array(16)

  record (seq: number): void {
    this.deliveries++
    const byte = seq >> 3
    if (byte >= this.seen.length) {
      let size = this.seen.length * 2
      while (size <= byte) size *= 2
      const bigger = new Uint8Array(size)
      bigger.set(this.seen)
      this.seen = bigger
    }
    const bit = 1 << (seq & 7)
    if ((this.seen[byte] & bit) !== 0) { this.duplicates++; return }
    this.seen[byte] |= bit
    this.received++
    if (seq < this.maxSeq) this.reordered++
    else this.maxSeq = seq
  }

  has (seq: number): boolean {
    const byte = seq >> 3
    return byte < this.seen.length && (this.seen[byte] & (1 << (seq & 7))) !== 0
  }

  // Sequence numbers 1..sent never seen, at most `limit` of them (for the report).
  missing (sent: number, limit: number): number[] {
    const out: number[] = []
    for (let s = 1; s <= sent && out.length < limit; s++) if (!this.has(s)) out.push(s)
    return out
  }

  // Distinct sequence numbers in 1..sent (a stray higher one from a previous run does not count).
  receivedUpTo (sent: number): number {
    if (this.maxSeq <= sent) return this.received
    let n = 0
    for (let s = 1; s <= sent; s++) if (this.has(s)) n++
    return n
  }
}

export interface CheckerOptions {
  target: BrokerTarget
  filter: string
  qos: 0 | 1
  runId: number
  clientId: string
  log: Logger
  connectTimeoutMs: number
}

export function newLatencyHistogram (): hdr.Histogram {
  // Microseconds, 3 significant digits, auto-resizing: exact enough for p99.9 and max.
  return hdr.build({ numberOfSignificantValueDigits: 3 })
}

export class Checker implements LinkOwner {
  readonly accounts: Array<DeviceAccount | undefined> = []
  readonly latencyUs = newLatencyHistogram()
  foreign = 0 // messages without our header or from another run
  reconnects = 0
  private readonly link: Link
  private readonly stamp: Stamp = { run: 0, device: 0, seq: 0, sentAtMs: 0 }
  private subscribed: { resolve: () => void, reject: (err: Error) => void } | null = null
  private stopped = false
  private timer: NodeJS.Timeout | null = null

  constructor (private readonly opts: CheckerOptions) {
    this.link = new Link(this)
  }

  // Resolves once the subscription is in place (SUBACK), rejects when the broker is unreachable.
  async start (): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.subscribed = { resolve, reject }
      this.connect()
      this.timer = setInterval(() => {
        const verdict = this.link.checkKeepalive(Date.now(), 30_000, this.opts.connectTimeoutMs)
        if (verdict !== 'ok') this.link.close(verdict === 'dead' ? 'keepalive timeout' : 'connect timeout')
      }, 250)
    })
  }

  private connect (): void {
    this.link.open(this.opts.target, { clientId: this.opts.clientId, clean: true, keepaliveSec: 30 }, Date.now())
  }

  stop (): void {
    this.stopped = true
    if (this.timer !== null) clearInterval(this.timer)
    this.link.close('stopped')
  }

  account (device: number): DeviceAccount {
    let a = this.accounts[device]
    if (a === undefined) { a = new DeviceAccount(); this.accounts[device] = a }
    return a
  }

  onConnack (_sessionPresent: boolean, returnCode: number): void {
    if (returnCode !== 0) { this.link.close(`refused (return code ${returnCode})`); return }
    this.link.write(encodeSubscribe(1, [{ topic: this.opts.filter, qos: this.opts.qos }]))
  }

  onSuback (_packetId: number, buf: Buffer, start: number): void {
    if (buf[start] === 0x80) { this.failStart(new Error(`subscription to ${this.opts.filter} refused`)); return }
    const s = this.subscribed
    this.subscribed = null
    s?.resolve()
  }

  onPuback (): void {}

  onPublish (flags: number, buf: Buffer, start: number, end: number): void {
    const now = nowMs()
    const idAt = publishPacketIdOffset(buf, start)
    let payloadStart = idAt
    if (((flags >> 1) & 3) > 0) {
      this.link.write(encodePuback(buf.readUInt16BE(idAt)))
      payloadStart += 2
    }
    if (!decodeStamp(buf, payloadStart, end, this.stamp) || this.stamp.run !== this.opts.runId) { this.foreign++; return }
    this.account(this.stamp.device).record(this.stamp.seq)
    this.latencyUs.recordValue(Math.max(0, Math.round((now - this.stamp.sentAtMs) * 1000)))
  }

  private failStart (err: Error): void {
    const s = this.subscribed
    this.subscribed = null
    if (s !== null) { this.stop(); s.reject(err) }
  }

  onLinkClosed (reason: string): void {
    if (this.stopped) return
    if (this.subscribed !== null) { this.failStart(new Error(`checker cannot reach ${this.opts.target.url}: ${reason}`)); return }
    // Lost while running: reconnect; whatever was missed meanwhile shows up as loss.
    this.reconnects++
    this.opts.log.warn({ reason }, 'checker connection lost; reconnecting')
    setTimeout(() => { if (!this.stopped) this.connect() }, 200)
  }
}
