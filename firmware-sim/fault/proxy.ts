// A TCP proxy between devices and the broker that injects network faults:
// - cut: every connection is closed and new ones are refused (reset) for the duration;
// - blackhole: bytes are silently dropped in both directions, sockets stay open (a dead
//   cellular link: no FIN, no RST). Only keepalive can detect it. When it ends, connections
//   that lost bytes are closed (their MQTT stream is broken), like an expired NAT mapping;
// - latency: each chunk is delayed by a fixed time, order preserved;
// - throttle: each direction of each connection limited to N bytes/s.
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import type { Logger } from '../../src/log/index.js'

class Pipe {
  private lastReleaseAt = 0
  private nextFreeAt = 0
  tainted = false

  constructor (private readonly proxy: FaultProxy, private readonly src: Socket, private readonly dst: Socket) {
    src.on('data', (chunk: Buffer) => { this.forward(chunk) })
  }

  private forward (chunk: Buffer): void {
    const p = this.proxy
    if (p.blackholed) { this.tainted = true; return }
    if (p.latencyMs === 0 && p.throttleBytesPerSec === 0 && this.lastReleaseAt <= Date.now()) {
      if (!this.dst.write(chunk)) {
        this.src.pause()
        this.dst.once('drain', () => { this.src.resume() })
      }
      return
    }
    const now = Date.now()
    let releaseAt = Math.max(now + p.latencyMs, this.lastReleaseAt)
    if (p.throttleBytesPerSec > 0) {
      releaseAt = Math.max(releaseAt, this.nextFreeAt)
      this.nextFreeAt = releaseAt + chunk.length * 1000 / p.throttleBytesPerSec
    }
    this.lastReleaseAt = releaseAt
    setTimeout(() => { if (!this.dst.destroyed) this.dst.write(chunk) }, releaseAt - now)
  }
}

interface Pair { client: Socket, upstream: Socket, up: Pipe, down: Pipe }

export class FaultProxy {
  private readonly server: Server
  private readonly pairs = new Set<Pair>()
  refusing = false
  blackholed = false
  latencyMs = 0
  throttleBytesPerSec = 0
  connections = 0
  cuts = 0

  constructor (private readonly upstreamHost: string, private readonly upstreamPort: number, private readonly log: Logger) {
    this.server = createServer((client) => { this.accept(client) })
  }

  async listen (host = '127.0.0.1'): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(0, host, () => { resolve() })
    })
    return (this.server.address() as AddressInfo).port
  }

  private accept (client: Socket): void {
    if (this.refusing) { client.resetAndDestroy(); return }
    this.connections++
    client.setNoDelay(true)
    const upstream = connect({ host: this.upstreamHost, port: this.upstreamPort })
    upstream.setNoDelay(true)
    const pair: Pair = { client, upstream, up: new Pipe(this, client, upstream), down: new Pipe(this, upstream, client) }
    this.pairs.add(pair)
    const close = (): void => {
      // During a blackhole a close on one side must not reach the other: a dead link carries
      // no FIN or RST either. The survivor is closed when the blackhole ends.
      if (this.blackholed) {
        pair.up.tainted = true
        if (!(client.destroyed && upstream.destroyed)) return
      }
      if (!this.pairs.delete(pair)) return
      client.destroy()
      upstream.destroy()
    }
    client.on('close', close).on('error', close)
    upstream.on('close', close).on('error', close)
  }

  cut (): void {
    this.refusing = true
    this.cuts++
    this.log.info({ connections: this.pairs.size }, 'fault: cut')
    for (const p of [...this.pairs]) { p.client.resetAndDestroy(); p.upstream.destroy() }
  }

  endCut (): void { this.refusing = false }

  startBlackhole (): void {
    this.blackholed = true
    this.log.info({ connections: this.pairs.size }, 'fault: blackhole')
  }

  endBlackhole (): void {
    this.blackholed = false
    for (const p of [...this.pairs]) {
      if (p.up.tainted || p.down.tainted) { p.client.destroy(); p.upstream.destroy() }
    }
  }

  get openConnections (): number { return this.pairs.size }

  async close (): Promise<void> {
    for (const p of this.pairs) { p.client.destroy(); p.upstream.destroy() }
    this.pairs.clear()
    await new Promise<void>((resolve) => { this.server.close(() => { resolve() }) })
  }
}
