// Broker limits that aedes and mqtt-packet do not enforce themselves: maximum packet size, maximum
// connections across all listeners, topic length. Each is configured (src/config/edge.ts) and each
// violation is logged with a stable code (src/errors/README.md).
import { createRequire } from 'node:module'
import { withFastReads } from './fast-buffer-list.js'
import { tributaryError, type TributaryError } from '../errors/index.js'

// ---- Maximum packet size -------------------------------------------------------------------
// mqtt-packet parses any remaining length up to 256 MiB and buffers the whole packet before it
// emits it, so one client could make the broker hold 256 MiB. We check the fixed header as soon as
// its remaining-length bytes are parsed, before the body is buffered: the parser of each
// connection carries its own limit in `_tribMaxPacketBytes`, and one prototype wrapper (installed
// once, not a closure per connection) compares against it.

interface MqttParserInternals {
  packet: { cmd: string, length: number }
  error: Error | null
  _stateCounter: number
  _resetState: () => void
  _parseLength: () => boolean
  _emitError: (err: Error) => void
  _tribMaxPacketBytes?: number
  _list: { length: number }
}

// Bytes of the fixed header: 1 type/flags byte + 1..4 remaining-length bytes.
function fixedHeaderBytes (remaining: number): number {
  return remaining < 128 ? 2 : remaining < 16_384 ? 3 : remaining < 2_097_152 ? 4 : 5
}

let parserPatched = false
let PlainBufferList: (new () => unknown) | undefined

// Installed once per process (createBroker calls it before the first connection; limitPacketSize
// makes sure of it too).
export function patchParserPrototype (): void {
  if (parserPatched) return
  // aedes imports mqtt-packet's parser; resolve the same module files it does.
  const require = createRequire(import.meta.url)
  const Parser = require('mqtt-packet/parser.js') as { prototype: MqttParserInternals }
  // bl's BufferList with allocation-free number and string reads (fast-buffer-list.ts).
  const List = withFastReads((createRequire(require.resolve('mqtt-packet'))('bl') as { BufferList: new () => object }).BufferList)
  PlainBufferList = List
  const Packet = require('mqtt-packet/packet.js') as new () => { cmd: string, length: number }
  // The parser's initial state (and its state after an error) with a plain BufferList instead of
  // a BufferListStream (see limitPacketSize): the stream was built for every connection and
  // thrown away at once, ~1 KiB of garbage per connection during connection storms.
  Parser.prototype._resetState = function resetStateWithPlainList (this: MqttParserInternals): void {
    this.packet = new Packet()
    this.error = null
    this._list = new List() as { length: number }
    this._stateCounter = 0
  }
  const original = Parser.prototype._parseLength
  Parser.prototype._parseLength = function parseLengthWithLimit (this: MqttParserInternals): boolean {
    const complete = original.call(this)
    const limit = this._tribMaxPacketBytes
    if (complete && limit !== undefined) {
      const total = this.packet.length + fixedHeaderBytes(this.packet.length)
      if (total > limit) {
        this._emitError(tributaryError('TRIB_ERR_MQTT_PACKET_TOO_LARGE',
          `${this.packet.cmd} packet of ${total} bytes exceeds maxPacketBytes ${limit}`, { bytes: total, limit, cmd: this.packet.cmd }))
        return false
      }
    }
    return complete
  }
  // Every other parser error is a malformed packet: tag it so the broker logs it with our code.
  const emitError = Parser.prototype._emitError
  Parser.prototype._emitError = function emitErrorWithCode (this: MqttParserInternals, err: Error & { code?: string }): void {
    if (err.code === undefined) err.code = 'TRIB_ERR_MQTT_MALFORMED'
    emitError.call(this, err)
  }
  parserPatched = true
}

// Sets the packet size limit on one aedes client's parser (aedes names it `_parser`).
// Also swaps the parser's byte list for a plain BufferList: mqtt-packet creates a BufferListStream,
// a full Duplex stream (two stream states, listeners, closures: about 1 KiB of heap per idle
// connection) of which the parser uses only the list methods (append, consume, length, readUInt*,
// slice, toString), which BufferList has. Memory per idle connection is a target (<= 12 KiB).
export function limitPacketSize (client: { _parser?: unknown }, maxPacketBytes: number): void {
  patchParserPrototype()
  const parser = client._parser as MqttParserInternals | undefined
  if (parser === undefined) return
  parser._tribMaxPacketBytes = maxPacketBytes
  if (parser._list.length === 0 && PlainBufferList !== undefined) parser._list = new PlainBufferList() as { length: number }
}

// ---- Topics --------------------------------------------------------------------------------
// Topic names and filters are bounded in bytes and levels: each level is a node in the
// subscription trie (qlobber) and each byte is stored per retained message and per index.

export function topicLevels (topic: string): number {
  let levels = 1
  for (let i = 0; i < topic.length; i++) if (topic.charCodeAt(i) === 47) levels++ // '/'
  return levels
}

// Returns an error when the topic (name or filter) breaks a limit, otherwise undefined.
export function checkTopic (topic: string, maxTopicLength: number, maxTopicLevels: number): TributaryError | undefined {
  // [MQTT-1.5.3] topics are UTF-8; the 65535-byte ceiling of the protocol is far above ours.
  // topic.length <= byteLength, so the cheap check first and the exact byte count only near the limit.
  if (topic.length > maxTopicLength || (topic.length * 3 > maxTopicLength && Buffer.byteLength(topic) > maxTopicLength)) {
    return tributaryError('TRIB_ERR_MQTT_TOPIC_INVALID', `topic of ${Buffer.byteLength(topic)} bytes exceeds maxTopicLength ${maxTopicLength}`, { limit: maxTopicLength })
  }
  const levels = topicLevels(topic)
  if (levels > maxTopicLevels) {
    return tributaryError('TRIB_ERR_MQTT_TOPIC_INVALID', `topic has ${levels} levels, more than maxTopicLevels ${maxTopicLevels}`, { levels, limit: maxTopicLevels })
  }
  return undefined
}

// ---- Connections ---------------------------------------------------------------------------
// One gate shared by every listener (TCP, TLS, WebSocket): `maxConnections` bounds the broker's
// memory (a Pi holds about 10k idle connections); beyond it new connections are closed at once.

export interface Closable {
  on (event: 'close', listener: () => void): unknown
  destroy (): void
}

export class ConnectionGate {
  active = 0
  refused = 0
  readonly maxConnections: number
  // One bound function shared by all connections (no closure per connection).
  private readonly release: () => void

  constructor (maxConnections: number) {
    this.maxConnections = maxConnections
    this.release = () => { this.active-- }
  }

  // Admits the connection (it is released on 'close') or destroys it and returns false.
  admit (conn: Closable): boolean {
    if (this.active >= this.maxConnections) {
      this.refused++
      conn.destroy()
      return false
    }
    this.active++
    // `on`, not `once`: 'close' fires once per stream anyway, and `once` would allocate a wrapper
    // per connection.
    conn.on('close', this.release)
    return true
  }
}
