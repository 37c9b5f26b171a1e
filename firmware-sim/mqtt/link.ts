// One MQTT connection as a device or checker sees it: stream, framing, CONNACK, keepalive and
// dispatch of the packets a client receives to an owner. It holds no session state itself (the
// owner keeps its in-flight messages) so a link can be dropped and reopened freely.
import type { Duplex } from 'node:stream'
import { CONNACK, FrameReader, PINGREQ_BYTES, PINGRESP, PUBACK, PUBLISH, SUBACK, encodeConnect, type ConnectOptions, type PacketSink } from './codec.js'
import { openStream, type BrokerTarget } from './transport.js'

export interface LinkOwner {
  onConnack: (sessionPresent: boolean, returnCode: number) => void
  // PUBLISH body at buf[start, end); flags are the fixed header's low 4 bits.
  onPublish: (flags: number, buf: Buffer, start: number, end: number) => void
  onPuback: (packetId: number) => void
  onSuback: (packetId: number, buf: Buffer, start: number, end: number) => void
  onLinkClosed: (reason: string) => void
}

export type KeepaliveVerdict = 'ok' | 'dead' | 'connect-timeout'

export class Link implements PacketSink {
  private stream: Duplex | null = null
  private readonly reader: FrameReader
  private closeReason = ''
  connected = false
  openedAt = 0
  lastReceivedAt = 0
  lastSentAt = 0
  pingSentAt = 0

  constructor (private readonly owner: LinkOwner) {
    this.reader = new FrameReader(this)
    this.onData = this.onData.bind(this)
    this.onStreamClose = this.onStreamClose.bind(this)
    this.onStreamError = this.onStreamError.bind(this)
  }

  get isOpen (): boolean { return this.stream !== null }

  open (target: BrokerTarget, connect: ConnectOptions, now: number): void {
    this.reader.reset()
    this.connected = false
    this.closeReason = ''
    this.openedAt = now
    this.lastReceivedAt = now
    this.lastSentAt = now
    this.pingSentAt = 0
    const connectPacket = encodeConnect(connect)
    const stream = openStream(target, () => { this.write(connectPacket) })
    stream.on('data', this.onData)
    stream.on('error', this.onStreamError)
    stream.on('close', this.onStreamClose)
    this.stream = stream
  }

  write (buf: Buffer): boolean {
    if (this.stream === null) return false
    this.lastSentAt = Date.now()
    return this.stream.write(buf)
  }

  get writableLength (): number { return this.stream?.writableLength ?? 0 }

  close (reason: string): void {
    if (this.stream === null) return
    if (this.closeReason === '') this.closeReason = reason
    this.stream.destroy()
  }

  // Run periodically. MQTT requires a control packet within each keepalive period
  // [MQTT-3.1.2-23]; we also ping when nothing arrived for a keepalive period, so a dead link
  // (blackhole: no RST, no FIN) is declared after 1.5 keepalives of silence at the latest.
  checkKeepalive (now: number, keepaliveMs: number, connectTimeoutMs: number): KeepaliveVerdict {
    if (this.stream === null) return 'ok'
    if (!this.connected) return now - this.openedAt > connectTimeoutMs ? 'connect-timeout' : 'ok'
    if (keepaliveMs <= 0) return 'ok'
    const silent = now - this.lastReceivedAt
    if (silent > keepaliveMs * 1.5) return 'dead'
    if (this.pingSentAt === 0 && (silent >= keepaliveMs || now - this.lastSentAt >= keepaliveMs * 0.75)) {
      this.pingSentAt = now
      this.write(PINGREQ_BYTES)
    }
    return 'ok'
  }

  onPacket (type: number, flags: number, buf: Buffer, start: number, end: number): void {
    switch (type) {
      case PUBLISH: this.owner.onPublish(flags, buf, start, end); break
      case PUBACK: this.owner.onPuback(buf.readUInt16BE(start)); break
      case PINGRESP: this.pingSentAt = 0; break
      case CONNACK:
        // [MQTT-3.2.2-*]: byte 1 bit 0 is session present, byte 2 the return code.
        this.connected = buf[start + 1] === 0
        this.owner.onConnack((buf[start] & 1) === 1, buf[start + 1])
        break
      case SUBACK: this.owner.onSuback(buf.readUInt16BE(start), buf, start + 2, end); break
      default: break // PUBREC/PUBREL/PUBCOMP never arrive: we use QoS 0 and 1 only.
    }
  }

  private onData (chunk: Buffer): void {
    this.lastReceivedAt = Date.now()
    if (!this.reader.push(chunk)) this.close('malformed packet from broker')
  }

  private onStreamError (err: Error): void {
    if (this.closeReason === '') this.closeReason = (err as NodeJS.ErrnoException).code ?? err.message
  }

  private onStreamClose (): void {
    const stream = this.stream
    if (stream === null) return
    stream.off('data', this.onData)
    this.stream = null
    const wasConnected = this.connected
    this.connected = false
    this.owner.onLinkClosed(this.closeReason !== '' ? this.closeReason : (wasConnected ? 'closed by broker' : 'closed before CONNACK'))
  }
}
