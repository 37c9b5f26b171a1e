// One simulated device: connects like firmware (CONNECT, keepalive, reconnect with exponential
// backoff and jitter), publishes telemetry with a per-device sequence number and send time,
// keeps its unacknowledged QoS 1 messages and resends them after a reconnect [MQTT-4.4.0-1],
// and answers commands. It is driven by the fleet's tick (no timers of its own, so 10,000
// devices cost 10,000 small objects, not 10,000 timers).
import type { Logger } from '../src/log/index.js'
import { backoffDelayMs } from './backoff.js'
import { DISCONNECT_BYTES, encodePuback, encodePublish, encodeSubscribe, publishPacketIdOffset } from './mqtt/codec.js'
import { Link, type LinkOwner } from './mqtt/link.js'
import type { BrokerTarget } from './mqtt/transport.js'
import { encodeBinary, encodeJson, nowMs } from './payload.js'
import type { Rng } from './random.js'
import { SensorState } from './sensors.js'

export interface DeviceSpec {
  group: string
  topicTemplate: string
  qos: 0 | 1
  payload: 'json' | 'binary'
  payloadBytes: number
  sensors: readonly string[]
  session: 'clean' | 'persistent'
  keepaliveMs: number
  inflight: number
  queueLimit: number
  ratePerSec: number
  // Readings per device before it stops producing (0 = no limit, the run's duration decides).
  maxMessages: number
  // Every burstEveryMs a device sends burstSize extra readings at once (0 = no bursts).
  burstEveryMs: number
  burstSize: number
  backoffMinMs: number
  backoffMaxMs: number
  connectTimeoutMs: number
}

// Shared by all devices of a run: where to connect and the counters the status line shows.
export interface FleetContext {
  target: BrokerTarget
  runId: number
  rng: Rng
  log: Logger
  totals: FleetTotals
}

export interface FleetTotals {
  published: number
  acked: number
  resent: number
  skipped: number
  connects: number
  // Devices connected at least once (the ramp is done when this equals the fleet size).
  firstConnects: number
  reconnects: number
  keepaliveTimeouts: number
  connectFailures: number
  commandsHandled: number
  online: number
}

export function newTotals (): FleetTotals {
  return { published: 0, acked: 0, resent: 0, skipped: 0, connects: 0, firstConnects: 0, reconnects: 0, keepaliveTimeouts: 0, connectFailures: 0, commandsHandled: 0, online: 0 }
}

// When the socket holds this much unsent data the link is congested; QoS 0 readings are then
// skipped rather than piling up in memory (a dead link would otherwise grow it without bound).
const MAX_BUFFERED_BYTES = 64 * 1024
// After a stall (GC, a busy event loop) a device sends at most this many overdue readings at
// once and skips the rest, as firmware sampling on a timer would.
const MAX_CATCH_UP = 100

type State = 'new' | 'connecting' | 'online' | 'waiting' | 'stopped'

export class Device implements LinkOwner {
  readonly id: string
  private readonly topic: Buffer
  private readonly replyTopic: Buffer
  private readonly commandPrefix: string
  private readonly link: Link
  private readonly sensors: SensorState | null
  private readonly intervalMs: number
  state: State = 'new'
  seq = 0
  everConnected = false
  private nextSendAt = 0
  private nextBurstAt = 0
  private reconnectAt = 0
  private attempt = 0
  private nextPacketId = 1
  // Unacknowledged QoS 1 PUBLISH packets by packet id, in send order (Map keeps insertion order).
  private readonly inflight = new Map<number, Buffer>()
  // Readings taken while the window was full or the link down, not yet given a packet id.
  private queue: Buffer[] = []
  lastCloseReason = ''

  constructor (readonly index: number, readonly clientId: string, readonly spec: DeviceSpec, private readonly ctx: FleetContext) {
    this.id = clientId
    this.topic = Buffer.from(spec.topicTemplate.replaceAll('{id}', clientId))
    this.replyTopic = Buffer.from(`devices/${clientId}/replies`)
    this.commandPrefix = `devices/${clientId}/commands/`
    this.link = new Link(this)
    this.sensors = spec.payload === 'json' ? new SensorState(spec.sensors, ctx.rng) : null
    this.intervalMs = spec.ratePerSec > 0 ? 1000 / spec.ratePerSec : Infinity
  }

  get pending (): number { return this.inflight.size + this.queue.length }

  start (now: number): void {
    if (this.state === 'stopped') return
    this.state = 'connecting'
    this.link.open(this.ctx.target, { clientId: this.clientId, clean: this.spec.session === 'clean', keepaliveSec: Math.ceil(this.spec.keepaliveMs / 1000) }, now)
  }

  // Stops producing; the link stays up so in-flight messages can still be acknowledged.
  stopProducing (): void { this.nextSendAt = Infinity; this.nextBurstAt = Infinity }

  stop (): void {
    const wasOnline = this.state === 'online'
    this.state = 'stopped'
    if (wasOnline) this.link.write(DISCONNECT_BYTES)
    this.link.close('stopped')
  }

  tick (now: number): void {
    switch (this.state) {
      case 'online': {
        const verdict = this.link.checkKeepalive(now, this.spec.keepaliveMs, this.spec.connectTimeoutMs)
        if (verdict === 'dead') {
          this.ctx.totals.keepaliveTimeouts++
          this.link.close('keepalive timeout')
          return
        }
        this.produceDue(now)
        break
      }
      case 'connecting':
        if (this.link.checkKeepalive(now, this.spec.keepaliveMs, this.spec.connectTimeoutMs) === 'connect-timeout') this.link.close('connect timeout')
        this.produceDue(now)
        break
      case 'waiting':
        this.produceDue(now)
        if (now >= this.reconnectAt) this.start(now)
        break
      default: break
    }
  }

  private produceDue (now: number): void {
    if (!this.everConnected) return
    let n = 0
    while (this.nextSendAt <= now) {
      if (n++ < MAX_CATCH_UP) this.produce()
      else this.ctx.totals.skipped++
      this.nextSendAt += this.intervalMs
    }
    if (this.nextBurstAt <= now) {
      for (let i = 0; i < this.spec.burstSize; i++) this.produce()
      this.nextBurstAt += this.spec.burstEveryMs
    }
  }

  private makePayload (seq: number): Buffer {
    const sentAt = nowMs()
    if (this.sensors === null) return encodeBinary(this.spec.payloadBytes, this.ctx.runId, this.index, seq, sentAt)
    return encodeJson(this.ctx.runId, this.index, seq, sentAt, this.sensors.read())
  }

  // Takes one reading. A sequence number is given only to a reading that will be sent (or is
  // kept until it can be): a skipped reading never counts as lost.
  produce (): void {
    if (this.spec.maxMessages > 0 && this.seq >= this.spec.maxMessages) return
    const online = this.state === 'online'
    if (this.spec.qos === 0) {
      if (!online || this.link.writableLength > MAX_BUFFERED_BYTES) { this.ctx.totals.skipped++; return }
      const payload = this.makePayload(++this.seq)
      this.link.write(encodePublish(this.topic, payload, 0, 0, false))
      this.ctx.totals.published++
      return
    }
    if (online && this.inflight.size < this.spec.inflight && this.queue.length === 0) {
      this.sendQos1(this.makePayload(++this.seq))
      return
    }
    if (this.queue.length >= this.spec.queueLimit) { this.ctx.totals.skipped++; return }
    this.queue.push(this.makePayload(++this.seq))
  }

  // Telemetry uses packet ids 1..32767 and replies 32768..65535, so the ack of a reply (not
  // kept for resend) can never be mistaken for the ack of a telemetry message.
  private allocatePacketId (): number {
    do {
      this.nextPacketId = this.nextPacketId >= 32767 ? 1 : this.nextPacketId + 1
    } while (this.inflight.has(this.nextPacketId))
    return this.nextPacketId
  }

  private nextReplyId = 0
  private allocateReplyId (): number {
    this.nextReplyId = (this.nextReplyId + 1) & 0x7fff
    return 32768 + this.nextReplyId
  }

  private sendQos1 (payload: Buffer): void {
    const packetId = this.allocatePacketId()
    const packet = encodePublish(this.topic, payload, 1, packetId, false)
    this.inflight.set(packetId, packet)
    this.link.write(packet)
    this.ctx.totals.published++
  }

  private drainQueue (): void {
    let i = 0
    while (i < this.queue.length && this.inflight.size < this.spec.inflight) this.sendQos1(this.queue[i++])
    if (i > 0) this.queue = i === this.queue.length ? [] : this.queue.slice(i)
  }

  onConnack (_sessionPresent: boolean, returnCode: number): void {
    if (returnCode !== 0) {
      this.ctx.log.warn({ device: this.id, returnCode }, 'connection refused by broker')
      this.link.close(`refused (return code ${returnCode})`)
      return
    }
    const now = Date.now()
    this.state = 'online'
    this.attempt = 0
    this.ctx.totals.connects++
    this.ctx.totals.online++
    if (!this.everConnected) {
      this.everConnected = true
      this.ctx.totals.firstConnects++
      // Random phase so devices started together do not publish in lockstep.
      this.nextSendAt = now + this.ctx.rng() * Math.min(this.intervalMs, 10_000)
      this.nextBurstAt = this.spec.burstEveryMs > 0 ? now + this.spec.burstEveryMs : Infinity
    }
    this.link.write(encodeSubscribe(1, [{ topic: `${this.commandPrefix}#`, qos: 1 }]))
    // Resend every unacknowledged message, in order, with DUP set [MQTT-4.4.0-1] [MQTT-3.3.1-1].
    for (const packet of this.inflight.values()) {
      packet[0] |= 0x08
      this.link.write(packet)
      this.ctx.totals.resent++
    }
    this.drainQueue()
  }

  onPuback (packetId: number): void {
    if (!this.inflight.delete(packetId)) return // a reply's ack, or a late duplicate ack
    this.ctx.totals.acked++
    if (this.queue.length > 0) this.drainQueue()
  }

  onSuback (): void {}

  onPublish (flags: number, buf: Buffer, start: number, end: number): void {
    const qos = (flags >> 1) & 3
    const topicEnd = publishPacketIdOffset(buf, start)
    let payloadStart = topicEnd
    if (qos > 0) {
      this.link.write(encodePuback(buf.readUInt16BE(topicEnd)))
      payloadStart += 2
    }
    const topic = buf.toString('utf8', start + 2, topicEnd)
    if (!topic.startsWith(this.commandPrefix)) return
    this.handleCommand(topic.slice(this.commandPrefix.length), buf.toString('utf8', payloadStart, end))
  }

  // Acts on a command (a setpoint nudges the simulated temperature, like a heater would) and
  // replies with the command's id and original timestamp so the sender measures the round trip.
  private handleCommand (name: string, body: string): void {
    let cmd: { id?: unknown, ts?: unknown, value?: unknown }
    try { cmd = JSON.parse(body) } catch { return }
    if (typeof cmd.value === 'number') this.sensors?.nudge('temperature', cmd.value)
    this.ctx.totals.commandsHandled++
    const reply = Buffer.from(JSON.stringify({ id: cmd.id, ts: cmd.ts, cmd: name, ok: true }))
    // QoS 1 but not kept for resend: a reply lost in an outage shows as a command timeout.
    this.link.write(encodePublish(this.replyTopic, reply, 1, this.allocateReplyId(), false))
  }

  onLinkClosed (reason: string): void {
    const wasOnline = this.state === 'online'
    if (wasOnline) this.ctx.totals.online--
    this.lastCloseReason = reason
    if (this.state === 'stopped') return
    if (wasOnline) this.ctx.totals.reconnects++
    else this.ctx.totals.connectFailures++
    this.ctx.log.debug({ device: this.id, reason, attempt: this.attempt }, 'link closed')
    this.state = 'waiting'
    const now = Date.now()
    this.reconnectAt = now + backoffDelayMs(this.attempt++, this.spec.backoffMinMs, this.spec.backoffMaxMs, this.ctx.rng)
  }
}
