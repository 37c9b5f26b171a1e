// A tiny HTTP server for operators: GET /healthz (200 while running, 503 while shutting down)
// and GET /metrics (Prometheus text format).
import { createServer, type Server } from 'node:http'
import type { Registry } from 'prom-client'
import { listenHttp } from '../src/metrics/http-server.js'

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
  const listening = await listenHttp(server, host, port)
  return { port: listening.port, setReady: (r) => { ready = r }, close: listening.close }
}
