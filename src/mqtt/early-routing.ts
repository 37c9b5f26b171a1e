// Route before durable, ack after durable (see broker.ts): a client's QoS 1 PUBLISH is handed to
// aedes' routing (`Aedes.prototype.publish`: retained store, offline queues, online subscribers)
// right after its record is appended, while aedes' PUBLISH handler still waits for the durable
// callback to write the PUBACK. After the PUBACK the handler calls `broker.publish` for the same
// packet object; `publishOnce` recognises it and does not route it a second time, it only
// reports the outcome of the early routing (waiting for it if it has not finished).
//
// State per packet, in a symbol-keyed property of the packet object (aedes passes the same object
// to authorizePublish and to publish): nothing to clean up when the publisher vanishes before its
// PUBACK and publish is never called. Not a WeakMap: a long-lived WeakMap with one short-lived key
// per message made every young-generation GC walk it (see src/mqtt/record-offsets.ts). No closure per message: one shared callback, which aedes
// binds to its PublishState (`this.packet` is the packet given to publish).
import type { Aedes, Client, PublishPacket } from 'aedes'

type Done = (err?: Error | null) => void
type RouteFn = (packet: PublishPacket, client: Client | null, done: Done) => void
// ROUTING: started, not finished; null: routed; Error: routing failed; a function: aedes'
// publish callback, waiting for the routing to finish.
const ROUTING = true
type State = typeof ROUTING | null | Error | Done
const STATE = Symbol('tributary.earlyRouting')
// `undefined`: not claimed, or finished (set back rather than deleted: a delete would turn every
// packet object into a slow dictionary-mode object).
interface Claimed { [STATE]?: State }
const stateOf = (packet: object): State | undefined => (packet as Claimed)[STATE]
const setState = (packet: object, state: State | undefined): void => { (packet as Claimed)[STATE] = state }

interface PublishState { packet?: object }

export class EarlyRouting {
  private readonly routeNow: RouteFn
  private readonly routed: (this: PublishState | undefined, err?: Error | null) => void

  constructor (aedes: Aedes, onError: (err: Error) => void) {
    const original = aedes.publish as unknown as (this: Aedes, packet: PublishPacket, client: Client | null | Done, done?: Done) => void
    this.routeNow = (packet, client, done) => { original.call(aedes, packet, client, done) }

    this.routed = function routedEarly (this: PublishState | undefined, err?: Error | null): void {
      const result = err ?? null
      if (result !== null) onError(result)
      const packet = this?.packet
      if (packet === undefined) return
      const state = stateOf(packet)
      if (typeof state === 'function') {
        setState(packet, undefined)
        state(result)
      } else if (state === ROUTING) {
        setState(packet, result)
      }
    }

    // Replaces the instance's publish (aedes calls `client.broker.publish`); anything not routed
    // early (wills at QoS 0/2, $SYS, API publishes, QoS 0 and 2 client messages) passes through.
    const publishOnce = function publishOnce (packet: PublishPacket, client: Client | null | Done, done?: Done): void {
      const state = stateOf(packet)
      // (A function: a publish of this packet already waits; a second one is not ours to skip.)
      if (state === undefined || typeof state === 'function') { original.call(aedes, packet, client, done); return }
      const callback = typeof client === 'function' ? client : done
      if (state === ROUTING) {
        // Still routing (a persistence call is pending): answer when it ends.
        setState(packet, callback ?? noop)
        return
      }
      setState(packet, undefined)
      if (callback !== undefined) callback(state)
    }
    ;(aedes as unknown as { publish: typeof publishOnce }).publish = publishOnce
  }

  // Before the append: from here on a publish call for `packet` waits for route() instead of
  // routing it (an appender may fire its durable callback, and so the PUBACK and aedes' publish
  // call, before append returns).
  claim (packet: PublishPacket): void {
    setState(packet, ROUTING)
  }

  // The append failed: nothing will be routed early; a waiting publish call gets the error.
  release (packet: PublishPacket, err: Error): void {
    const state = stateOf(packet)
    setState(packet, undefined)
    if (typeof state === 'function') state(err)
  }

  // After the append: starts aedes' routing of the claimed `packet`; its publish call after the
  // PUBACK routes nothing.
  route (packet: PublishPacket, client: Client | null): void {
    this.routeNow(packet, client, this.routed)
  }
}

function noop (): void {}
