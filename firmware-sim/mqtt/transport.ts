// Opens a byte stream to a broker URL: mqtt:// (or tcp://) over TCP, ws:// over WebSocket with
// the "mqtt" subprotocol [MQTT-6.0.0-3]. Both give a Duplex, so the client code is the same.
import { connect as tcpConnect } from 'node:net'
import type { Duplex } from 'node:stream'
import WebSocket, { createWebSocketStream } from 'ws'
import { tributaryError } from '../../src/errors/index.js'

export interface BrokerTarget {
  kind: 'tcp' | 'ws'
  host: string
  port: number
  path: string
  url: string
}

export function parseBrokerUrl (url: string, field = 'broker'): BrokerTarget {
  let u: URL
  try { u = new URL(url) } catch {
    throw tributaryError('TRIB_ERR_CONFIG_INVALID', `config field "${field}": not a URL: ${JSON.stringify(url)} (expected mqtt://host:port or ws://host:port/path)`, { field })
  }
  const scheme = u.protocol.replace(/:$/, '')
  const host = u.hostname.replace(/^\[|\]$/g, '')
  if (scheme === 'mqtt' || scheme === 'tcp') return { kind: 'tcp', host, port: u.port === '' ? 1883 : Number(u.port), path: '', url }
  if (scheme === 'ws') return { kind: 'ws', host, port: u.port === '' ? 80 : Number(u.port), path: u.pathname + u.search, url }
  throw tributaryError('TRIB_ERR_CONFIG_INVALID', `config field "${field}": unsupported scheme "${scheme}" in ${url} (use mqtt:// or ws://)`, { field })
}

// The same broker reached through another host:port (the fault proxy).
export function viaProxy (target: BrokerTarget, host: string, port: number): BrokerTarget {
  const url = target.kind === 'tcp' ? `mqtt://${host}:${port}` : `ws://${host}:${port}${target.path}`
  return { ...target, host, port, url }
}

// `onConnect` fires when bytes can be written (TCP connected / WebSocket open).
export function openStream (target: BrokerTarget, onConnect: () => void): Duplex {
  if (target.kind === 'tcp') {
    const socket = tcpConnect({ host: target.host, port: target.port })
    socket.setNoDelay(true)
    socket.once('connect', onConnect)
    return socket
  }
  const ws = new WebSocket(`ws://${target.host}:${target.port}${target.path === '' ? '/' : target.path}`, 'mqtt', { perMessageDeflate: false })
  ws.once('open', onConnect)
  return createWebSocketStream(ws)
}
