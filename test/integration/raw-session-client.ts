// A raw MQTT 3.1.1 client over a real socket (mqtt-packet over net) for tests that must see and
// choose each packet: packet ids, DUP flags, PUBREL, and acks sent (or withheld) by hand.
import { connect as netConnect, type Socket } from 'node:net'
import mqttPacket, { type Packet } from 'mqtt-packet'
import { waitFor } from '../helpers/net.js'

export interface RawPublish { topic: string, payload: string, qos: number, messageId: number, dup: boolean }

export class RawClient {
  readonly packets: Packet[] = []
  closed = false
  private constructor (private readonly socket: Socket) {}

  // Connects with clean=false (unless told) and resolves with the CONNACK's sessionPresent.
  static async connect (port: number, clientId: string, clean = false): Promise<{ client: RawClient, sessionPresent: boolean }> {
    const socket = netConnect({ host: '127.0.0.1', port })
    const client = new RawClient(socket)
    const parser = mqttPacket.parser({ protocolVersion: 4 })
    parser.on('packet', (p: Packet) => { client.packets.push(p) })
    socket.on('data', (b) => { parser.parse(b) })
    socket.on('close', () => { client.closed = true })
    socket.on('error', () => {})
    await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
    client.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean, clientId, keepalive: 0 })
    const connack = await client.next('connack')
    if (connack.cmd !== 'connack' || connack.returnCode !== 0) throw new Error(`CONNACK refused: ${JSON.stringify(connack)}`)
    return { client, sessionPresent: connack.sessionPresent }
  }

  send (p: Record<string, unknown>): void {
    this.socket.write(mqttPacket.generate(p as never))
  }

  // The first packet of this kind not taken yet (taking it).
  async next (cmd: string, timeoutMs = 10_000): Promise<Packet> {
    let found: Packet | undefined
    await waitFor(`a ${cmd} packet`, () => {
      const i = this.packets.findIndex((p) => p.cmd === cmd)
      if (i < 0) return false
      found = this.packets.splice(i, 1)[0]
      return true
    }, timeoutMs)
    return found!
  }

  async subscribe (subs: Array<{ topic: string, qos: 0 | 1 | 2 }>, messageId = 1): Promise<void> {
    this.send({ cmd: 'subscribe', messageId, subscriptions: subs })
    await this.next('suback')
  }

  // Publishes and PUBRELs received, in arrival order (taken).
  async take (n: number, timeoutMs = 10_000): Promise<Array<RawPublish | { cmd: 'pubrel', messageId: number }>> {
    await waitFor(`${n} publish/pubrel packets`, () => this.packets.filter((p) => p.cmd === 'publish' || p.cmd === 'pubrel').length >= n, timeoutMs)
    const out: Array<RawPublish | { cmd: 'pubrel', messageId: number }> = []
    for (let i = 0; i < this.packets.length && out.length < n;) {
      const p = this.packets[i]
      if (p.cmd === 'publish') {
        out.push({ topic: p.topic, payload: p.payload.toString(), qos: p.qos, messageId: p.messageId ?? 0, dup: p.dup })
        this.packets.splice(i, 1)
      } else if (p.cmd === 'pubrel') {
        out.push({ cmd: 'pubrel', messageId: p.messageId ?? 0 })
        this.packets.splice(i, 1)
      } else i++
    }
    return out
  }

  // Waits until everything sent so far was handled by the broker (it answers in order).
  async sync (): Promise<void> {
    this.send({ cmd: 'pingreq' })
    await this.next('pingresp')
  }

  // Nothing of these kinds arrived (within what has arrived so far).
  pending (cmd: string): Packet[] { return this.packets.filter((p) => p.cmd === cmd) }

  async disconnect (): Promise<void> {
    this.send({ cmd: 'disconnect' })
    this.socket.end()
    await waitFor('socket closed', () => this.closed)
  }

  // Without DISCONNECT (a network failure for the broker).
  async drop (): Promise<void> {
    this.socket.destroy()
    await waitFor('socket closed', () => this.closed)
  }
}
