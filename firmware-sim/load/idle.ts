// Idle-connection mode, for memory measurements of a broker: open N MQTT connections at the
// ramp rate, hold them (keepalive 0: no traffic at all) for the hold time, then close them.
import { connect, type Socket } from 'node:net'
import { randomInt } from 'node:crypto'
import { tributaryError } from '../../src/errors/index.js'
import type { Logger } from '../../src/log/index.js'
import { encodeConnect } from '../mqtt/codec.js'
import { parseBrokerUrl } from '../mqtt/transport.js'

export interface IdleOptions { broker: string, connections: number, rampPerSec: number, holdMs: number, idPrefix: string, signal?: AbortSignal }
export interface IdleReport { broker: string, requested: number, connected: number, failed: number, rampSeconds: number, connectsPerSec: number, heldMs: number, maxRssBytes: number }

// Connections opened but not yet acknowledged; keeps a fast ramp from flooding the broker's
// accept queue (SYN backlog) with thousands of simultaneous handshakes.
const MAX_PENDING = 500

export async function runIdle (opts: IdleOptions, log: Logger): Promise<IdleReport> {
  const target = parseBrokerUrl(opts.broker, 'broker')
  if (target.kind !== 'tcp') throw tributaryError('TRIB_ERR_CONFIG_INVALID', 'config field "broker": idle mode speaks MQTT over TCP only (mqtt://)', { field: 'broker' })
  const runId = randomInt(1, 2 ** 31)
  const sockets: Socket[] = []
  let connected = 0; let failed = 0; let pending = 0
  const t0 = performance.now()
  let opened = 0
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const due = Math.min(opts.connections, Math.floor((performance.now() - t0) * opts.rampPerSec / 1000) + 1)
      while (opened < due && pending < MAX_PENDING) {
        const i = opened++
        pending++
        const s = connect({ host: target.host, port: target.port, noDelay: true })
        let settled = false
        const settle = (ok: boolean): void => { if (settled) return; settled = true; pending--; if (ok) connected++; else failed++ }
        s.once('connect', () => { s.write(encodeConnect({ clientId: `${opts.idPrefix}-idle-${runId}-${i}`, clean: true, keepaliveSec: 0 })) })
        s.once('data', (chunk: Buffer) => { settle(chunk[0] === 0x20 && chunk[3] === 0) })
        s.on('error', () => { settle(false) })
        s.on('close', () => { settle(false) })
        sockets.push(s)
      }
      if ((opened === opts.connections && pending === 0) || opts.signal?.aborted === true) { clearInterval(tick); resolve() }
    }, 5)
  })
  const rampSeconds = (performance.now() - t0) / 1000
  log.info({ connected, failed, rampSeconds }, 'idle: connections open')
  if (connected === 0 && opts.connections > 0) {
    for (const s of sockets) s.destroy()
    throw tributaryError('TRIB_ERR_SIM_CONNECT', `idle mode: no connection to ${target.url} succeeded`, { url: target.url })
  }
  const h0 = performance.now()
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, opts.holdMs)
    opts.signal?.addEventListener('abort', () => { clearTimeout(t); resolve() }, { once: true })
  })
  const maxRssBytes = process.memoryUsage.rss()
  for (const s of sockets) s.destroy()
  return { broker: target.url, requested: opts.connections, connected, failed, rampSeconds, connectsPerSec: Math.round(connected / rampSeconds), heldMs: Math.round(performance.now() - h0), maxRssBytes }
}

export function formatIdleReport (r: IdleReport): string {
  return `idle: ${r.connected}/${r.requested} connections to ${r.broker} in ${r.rampSeconds.toFixed(2)} s (${r.connectsPerSec}/s), ${r.failed} failed, held ${(r.heldMs / 1000).toFixed(1)} s; simulator RSS ${(r.maxRssBytes / 1048576).toFixed(1)} MiB`
}
