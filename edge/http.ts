// A tiny HTTP server for operators: GET /healthz (200 while running, 503 while shutting down)
// and GET /metrics (Prometheus text format).
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Registry } from 'prom-client'

export interface HealthServer {
  port: number
  setReady: (ready: boolean) => void
  close: () => Promise<void>
}

export async function startHealthServer (host: string, port: number, registry: Registry): Promise<HealthServer> {
  let ready = true
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET') { res.writeHead(405).end(); return }
    if (path === '/healthz') {
      res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: ready ? 'ok' : 'shutting down' }))
      return
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => { res.writeHead(200, { 'content-type': registry.contentType }).end(text) },
        (err: Error) => { res.writeHead(500).end(err.message) }
      )
      return
    }
    res.writeHead(404).end()
  })
  // Scrapers and probes are few: keep idle keep-alive sockets from holding the server open.
  server.keepAliveTimeout = 5_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve() })
  })
  return {
    port: (server.address() as AddressInfo).port,
    setReady: (r) => { ready = r },
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    }
  }
}
