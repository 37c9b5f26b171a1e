// Makes mqtt-packet's disabled debug() calls free. Must run before mqtt-packet is first loaded
// (src/cli.ts calls it before it loads a command; dist is built with code splitting so that aedes
// and mqtt-packet load only then).
//
// Why: mqtt-packet's parser and writer call debug() dozens of times per packet. A `debug` logger
// (the npm package) is `function debug (...args)`, which checks whether it is enabled only after
// the rest-parameter array is built: in a heap profile of the QoS 1 latency cell those arrays were
// ~2.4 KB of garbage per message (19% of everything the broker allocated), and young-generation
// garbage is what sets the broker's GC pauses. A logger that is disabled when mqtt-packet creates
// it (DEBUG does not name it) is replaced by a function with no parameters.
//
// How: the `debug` module's export is replaced, in Node's CommonJS module cache, by a proxy that
// forwards everything (enable(), names, formatters...) to the real one and only changes what
// creating an `mqtt-packet:*` logger returns. Trade-off: `DEBUG=mqtt-packet:*` must be set when
// the process starts; enabling those loggers later at run time has no effect.
import { createRequire } from 'node:module'
import { dirname } from 'node:path'

interface DebugLogger { (...args: unknown[]): void, enabled: boolean, namespace: string, extend: (ns: string) => DebugLogger }
type CreateDebug = (namespace: string) => DebugLogger

const QUIET_PREFIX = 'mqtt-packet:'

function disabledLogger (namespace: string): DebugLogger {
  const noop = (function debugDisabled () {}) as unknown as DebugLogger
  noop.enabled = false
  noop.namespace = namespace
  noop.extend = (ns: string) => disabledLogger(`${namespace}:${ns}`)
  return noop
}

let installed = false

// Returns whether the patch is in place (false: mqtt-packet or debug not resolvable as a
// CommonJS module here, e.g. inside a single-file bundle; nothing changes then).
export function quietMqttPacketDebug (): boolean {
  if (installed) return true
  try {
    const require = createRequire(import.meta.url)
    // The `debug` mqtt-packet itself resolves (there may be several copies in node_modules).
    const debugPath = require.resolve('debug', { paths: [dirname(require.resolve('mqtt-packet'))] })
    if (require.cache[debugPath] === undefined) require(debugPath)
    const cached = require.cache[debugPath]
    if (cached === undefined) return false
    const real = cached.exports as CreateDebug
    if (typeof real !== 'function') return false
    cached.exports = new Proxy(real, {
      apply (target, thisArg, args: [string]) {
        const logger = Reflect.apply(target, thisArg, args) as DebugLogger
        return typeof args[0] === 'string' && args[0].startsWith(QUIET_PREFIX) && !logger.enabled ? disabledLogger(args[0]) : logger
      }
    })
    installed = true
    return true
  } catch {
    return false
  }
}
