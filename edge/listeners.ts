// Network listeners of the edge broker: MQTT over TCP, TLS (when a certificate and key are
// configured) and WebSocket. All hand their connections to the one broker, whose connection gate
// counts them together against maxConnections.
import { createServer as createTcpServer, type Server as TcpServer, type AddressInfo } from 'node:net'
import { createServer as createTlsServer } from 'node:tls'
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http'
import { readFileSync } from 'node:fs'
import { WebSocketServer, createWebSocketStream, type WebSocket } from 'ws'
import type { Duplex } from 'node:stream'
import type { Logger } from '../src/log/index.js'

export interface ListenerConfig {
  host: string
  port: number
  wsPort: number
  tlsPort: number
  tlsCertFile: string | undefined
  tlsKeyFile: string | undefined
}

export interface Listeners {
  // Bound ports (the real ones when configured as 0); -1 = that listener is off.
  mqttPort: number
  wsPort: number
  tlsPort: number
  // Stops accepting at once; resolves when every listener has closed, which needs the broker to
  // have closed the existing connections (call broker.close() meanwhile).
  close: () => Promise<void>
}

type Handle = (conn: Duplex, req?: IncomingMessage) => void

// A TLS handshake that has not finished in this time is dropped: an open socket that never
// completes TLS would otherwise hold a file descriptor without counting as a connection yet.
const TLS_HANDSHAKE_TIMEOUT_MS = 10_000

async function listen (server: TcpServer | HttpServer, port: number, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve() })
  })
  return (server.address() as AddressInfo).port
}

async function closeServer (server: TcpServer | HttpServer): Promise<void> {
  await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
}

export async function startListeners (config: ListenerConfig, maxPacketBytes: number, handle: Handle, logger: Logger): Promise<Listeners> {
  const servers: Array<TcpServer | HttpServer> = []
  let wss: WebSocketServer | undefined
  const result: Listeners = { mqttPort: -1, wsPort: -1, tlsPort: -1, close }

  async function close (): Promise<void> {
    const closing = servers.map(closeServer)
    if (wss !== undefined) {
      const server = wss
      for (const ws of server.clients) ws.terminate()
      closing.push(new Promise<void>((resolve) => { server.close(() => { resolve() }) }))
    }
    await Promise.all(closing)
  }

  try {
    const tcp = createTcpServer(handle)
    // Nagle would hold small acks back for up to 40 ms; MQTT acks are small and latency matters.
    tcp.on('connection', setNoDelay)
    servers.push(tcp)
    result.mqttPort = await listen(tcp, config.port, config.host)

    if (config.tlsPort >= 0) {
      if (config.tlsCertFile === undefined || config.tlsKeyFile === undefined) {
        throw new Error('tls-port needs tls-cert and tls-key (checked at start-up by edge/main.ts)')
      }
      const tls = createTlsServer({
        cert: readFileSync(config.tlsCertFile),
        key: readFileSync(config.tlsKeyFile),
        handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS
      }, handle)
      tls.on('tlsClientError', (err) => { logger.debug({ err: err.message }, 'TLS handshake failed') })
      servers.push(tls)
      result.tlsPort = await listen(tls, config.tlsPort, config.host)
    }

    if (config.wsPort >= 0) {
      const http = createHttpServer((_req, res) => { res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket only\n') })
      servers.push(http)
      wss = new WebSocketServer({
        server: http,
        // ws buffers a whole message before handing it on; its default is 100 MiB. An MQTT client
        // sends one packet per message, so a message larger than the largest packet is refused
        // (close code 1009) before it is buffered.
        maxPayload: maxPacketBytes,
        perMessageDeflate: false,
        // [MQTT-6.0.0-3] the subprotocol is "mqtt" (MQTT 3.1 clients used "mqttv3.1").
        handleProtocols: (protocols) => protocols.has('mqtt') ? 'mqtt' : (protocols.has('mqttv3.1') ? 'mqttv3.1' : false)
      })
      wss.on('connection', (ws: WebSocket, req: IncomingMessage) => {
        handle(createWebSocketStream(ws), req)
      })
      wss.on('error', (err) => { logger.warn({ err: err.message }, 'WebSocket server error') })
      result.wsPort = await listen(http, config.wsPort, config.host)
    }
  } catch (err) {
    await close()
    throw err
  }
  return result
}

function setNoDelay (socket: { setNoDelay: (on: boolean) => unknown }): void {
  socket.setNoDelay(true)
}
