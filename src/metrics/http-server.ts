// Starting and stopping the small operator HTTP servers (/healthz, /metrics, ...) of the edge and
// the cloud node, so both bind, report their port and shut down the same way.
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface ListeningHttpServer {
  // The bound port (useful when asked for port 0).
  port: number
  close: () => Promise<void>
}

export async function listenHttp (server: Server, host: string, port: number): Promise<ListeningHttpServer> {
  // Scrapers and probes are few: keep idle keep-alive sockets from holding the server open.
  server.keepAliveTimeout = 5_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve() })
  })
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    }
  }
}
