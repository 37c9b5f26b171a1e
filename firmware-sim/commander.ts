// Sends commands to devices (`devices/{id}/commands/setpoint`) and measures the round trip to
// their reply on `devices/{id}/replies`. Connects straight to the broker, never through the
// fault proxy, so a fault shows on the device side only.
import type { Logger } from '../src/log/index.js'
import { encodePuback, encodePublish, encodeSubscribe, publishPacketIdOffset } from './mqtt/codec.js'
import { Link, type LinkOwner } from './mqtt/link.js'
import type { BrokerTarget } from './mqtt/transport.js'
import { newLatencyHistogram } from './checker.js'
import { nowMs } from './payload.js'

// A command without a reply after this long is counted as timed out (and forgotten, so the
// outstanding map stays bounded).
const COMMAND_TIMEOUT_MS = 10_000
// The commander's MQTT keepalive: it may send nothing for long stretches (a low command rate), so
// keepAlive() pings within this period [MQTT-3.1.2-23] or the broker would drop it after 1.5x.
const KEEPALIVE_SEC = 60
const CONNECT_TIMEOUT_MS = 10_000

export class Commander implements LinkOwner {
  readonly rttUs = newLatencyHistogram()
  sent = 0
  replied = 0
  timedOut = 0
  private readonly outstanding = new Map<number, number>()
  private readonly link: Link
  private nextId = 0
  private nextPacketId = 0
  private ready: (() => void) | null = null
  private failed: ((err: Error) => void) | null = null

  constructor (private readonly target: BrokerTarget, private readonly clientId: string, private readonly log: Logger) {
    this.link = new Link(this)
  }

  async start (): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.ready = resolve
      this.failed = reject
      this.link.open(this.target, { clientId: this.clientId, clean: true, keepaliveSec: KEEPALIVE_SEC }, Date.now())
    })
  }

  stop (): void { this.link.close('stopped') }

  send (deviceId: string, value: number): void {
    if (!this.link.connected) return
    const id = ++this.nextId
    const now = nowMs()
    this.outstanding.set(id, now)
    this.nextPacketId = this.nextPacketId >= 65535 ? 1 : this.nextPacketId + 1
    const body = Buffer.from(JSON.stringify({ id, ts: now, value }))
    this.link.write(encodePublish(Buffer.from(`devices/${deviceId}/commands/setpoint`), body, 1, this.nextPacketId, false))
    this.sent++
  }

  expire (now: number): void {
    for (const [id, at] of this.outstanding) {
      if (now - at < COMMAND_TIMEOUT_MS) break // insertion order = send order
      this.outstanding.delete(id)
      this.timedOut++
    }
  }

  // Run periodically (the simulator's 100 ms status tick): sends PINGREQ when due, closes a dead link.
  keepAlive (nowWallMs: number): void {
    if (this.link.checkKeepalive(nowWallMs, KEEPALIVE_SEC * 1000, CONNECT_TIMEOUT_MS) === 'dead') {
      this.log.warn('command link silent for 1.5 keepalives: closed')
      this.link.close('keepalive timeout')
    }
  }

  get pending (): number { return this.outstanding.size }

  onConnack (_sp: boolean, returnCode: number): void {
    if (returnCode !== 0) { this.link.close(`refused (return code ${returnCode})`); return }
    this.link.write(encodeSubscribe(1, [{ topic: 'devices/+/replies', qos: 1 }]))
  }

  onSuback (): void {
    const r = this.ready
    this.ready = null
    this.failed = null
    r?.()
  }

  onPuback (): void {}

  onPublish (flags: number, buf: Buffer, start: number, end: number): void {
    const idAt = publishPacketIdOffset(buf, start)
    let payloadStart = idAt
    if (((flags >> 1) & 3) > 0) { this.link.write(encodePuback(buf.readUInt16BE(idAt))); payloadStart += 2 }
    let reply: { id?: unknown }
    try { reply = JSON.parse(buf.toString('utf8', payloadStart, end)) } catch { return }
    if (typeof reply.id !== 'number') return
    const sentAt = this.outstanding.get(reply.id)
    if (sentAt === undefined) return
    this.outstanding.delete(reply.id)
    this.replied++
    this.rttUs.recordValue(Math.max(0, Math.round((nowMs() - sentAt) * 1000)))
  }

  onLinkClosed (reason: string): void {
    const f = this.failed
    this.ready = null
    this.failed = null
    if (f !== null) { f(new Error(`commander cannot reach ${this.target.url}: ${reason}`)); return }
    if (reason !== 'stopped') this.log.warn({ reason }, 'commander connection lost')
  }
}
