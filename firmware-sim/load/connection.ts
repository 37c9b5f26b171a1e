// Raw MQTT connections for load mode: a TCP socket, the frame reader and a CONNECT/CONNACK
// handshake, with no per-message allocation on the paths that matter.
import { connect, type Socket } from 'node:net'
import { CONNACK, FrameReader, SUBACK, encodeConnect, encodeSubscribe, type PacketSink } from '../mqtt/codec.js'
import type { BrokerTarget } from '../mqtt/transport.js'

export abstract class RawConnection implements PacketSink {
  socket!: Socket
  protected readonly reader: FrameReader
  private ready: { resolve: () => void, reject: (err: Error) => void } | null = null
  private subscribeFilter: string | null = null
  private subscribeQos: 0 | 1 = 0
  closed = false

  constructor () {
    this.reader = new FrameReader(this)
  }

  // Connects, sends CONNECT (and SUBSCRIBE when given) and resolves on CONNACK (or SUBACK).
  async open (target: BrokerTarget, clientId: string, subscribe?: { filter: string, qos: 0 | 1 }): Promise<void> {
    if (target.kind !== 'tcp') throw new Error('load mode speaks MQTT over TCP only (mqtt://)')
    this.subscribeFilter = subscribe?.filter ?? null
    this.subscribeQos = subscribe?.qos ?? 0
    await new Promise<void>((resolve, reject) => {
      this.ready = { resolve, reject }
      const socket = connect({ host: target.host, port: target.port })
      this.socket = socket
      socket.setNoDelay(true)
      socket.once('connect', () => { socket.write(encodeConnect({ clientId, clean: true, keepaliveSec: 0 })) })
      socket.on('data', (chunk: Buffer) => {
        if (!this.reader.push(chunk)) socket.destroy(new Error('malformed packet from broker'))
        this.afterChunk()
      })
      socket.on('error', (err) => { this.fail(err) })
      socket.on('close', () => {
        this.closed = true
        this.fail(new Error('connection closed by broker'))
        this.onClosed()
      })
    })
  }

  private fail (err: Error): void {
    const r = this.ready
    this.ready = null
    r?.reject(err)
  }

  onPacket (type: number, flags: number, buf: Buffer, start: number, end: number): void {
    if (type === CONNACK) {
      if (buf[start + 1] !== 0) { this.fail(new Error(`connection refused (return code ${buf[start + 1]})`)); return }
      if (this.subscribeFilter !== null) { this.socket.write(encodeSubscribe(1, [{ topic: this.subscribeFilter, qos: this.subscribeQos }])); return }
      this.resolveReady()
      return
    }
    if (type === SUBACK) { this.resolveReady(); return }
    this.onMessage(type, flags, buf, start, end)
  }

  private resolveReady (): void {
    const r = this.ready
    this.ready = null
    r?.resolve()
  }

  protected abstract onMessage (type: number, flags: number, buf: Buffer, start: number, end: number): void
  // Called once per received chunk after all its packets were handled (batching point).
  protected afterChunk (): void {}
  protected onClosed (): void {}

  close (): void {
    if (!this.socket.destroyed) this.socket.end(Buffer.from([0xe0, 0]))
    this.socket.destroy()
  }
}
