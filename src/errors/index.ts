// The one catalogue of coded errors. Codes are stable: scripts and operators match on them.
// Every code here must be documented in src/errors/README.md (test/unit/errors.test.ts checks).
// Expected outcomes (segment full, offset past end, bad CRC at the tail) are NOT errors: they are
// result values returned by the component. These are for failures a caller must handle.

export const ERROR_CODES = {
  TRIB_ERR_CONFIG_INVALID: 'A configuration value is missing, of the wrong type or out of range',
  TRIB_ERR_CONFIG_FILE: 'The configuration file cannot be read or is not valid YAML',
  TRIB_ERR_CLI_USAGE: 'Unknown subcommand, unknown flag or a flag without its value',
  TRIB_ERR_LOG_CLOSED: 'An operation was attempted on a commitlog that is closed',
  TRIB_ERR_LOG_CORRUPT: 'The commitlog holds data that recovery cannot explain (not a torn tail)',
  TRIB_ERR_LOG_RECORD_TOO_LARGE: 'A record is larger than the configured maximum record size',
  TRIB_ERR_LOG_IO: 'A read, write or fsync on the commitlog failed (disk full, I/O error)',
  TRIB_ERR_LOG_LOCKED: 'The data directory is already used by another process',
  TRIB_ERR_META_IO: 'The metadata store (LevelDB) failed',
  TRIB_ERR_MQTT_PACKET_TOO_LARGE: 'An MQTT packet exceeded the maximum packet size; the connection is closed',
  TRIB_ERR_MQTT_MALFORMED: 'An MQTT packet could not be parsed; the connection is closed',
  TRIB_ERR_MQTT_TOO_MANY_CONNECTIONS: 'The broker refused a connection because it is at its connection limit',
  TRIB_ERR_MQTT_TOPIC_INVALID: 'A topic is too long, has too many levels or invalid characters',
  TRIB_ERR_MQTT_INFLIGHT_FULL: 'A client exceeded its in-flight window',
  TRIB_ERR_MQTT_CONNECT_TIMEOUT: 'A connection sent no CONNECT within the connect timeout; it is closed',
  TRIB_ERR_MQTT_SESSION: 'A persistent session could not be taken or changed (contended, moved to another node, too many subscriptions); the connection is closed',
  TRIB_ERR_BRIDGE_AUTH: 'A bridge connection was refused: unknown edge or wrong token',
  TRIB_ERR_BRIDGE_FRAME: 'A bridge frame was malformed, oversized or out of protocol',
  TRIB_ERR_BRIDGE_EDGE_MISMATCH: 'A bridge batch claimed an edge id other than the authenticated one',
  TRIB_ERR_NET_LISTEN: 'A listener cannot bind its address (port in use, address not available, not permitted)',
  TRIB_ERR_STORE_IO: 'The cloud store failed to read or write',
  TRIB_ERR_STORE_FENCED: 'A cloud node lost its lease on an edge to another node',
  TRIB_ERR_SIM_SCENARIO: 'A simulator scenario file is invalid',
  TRIB_ERR_SIM_CONNECT: 'The simulator could not reach the broker',
  TRIB_ERR_SIM_LOSS: 'The simulator detected lost messages while --expect-no-loss was given'
} as const

export type ErrorCode = keyof typeof ERROR_CODES

export class TributaryError extends Error {
  readonly code: ErrorCode
  readonly details: Record<string, unknown> | undefined

  constructor (code: ErrorCode, message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'TributaryError'
    this.code = code
    this.details = details
  }
}

export function tributaryError (code: ErrorCode, message: string, details?: Record<string, unknown>, cause?: unknown): TributaryError {
  return new TributaryError(code, message, details, cause === undefined ? undefined : { cause })
}

export function isTributaryError (err: unknown, code?: ErrorCode): err is TributaryError {
  return err instanceof TributaryError && (code === undefined || err.code === code)
}
