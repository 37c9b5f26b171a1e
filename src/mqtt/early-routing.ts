// Route before durable, ack after durable (see broker.ts): a client's QoS 1 PUBLISH is handed to
// aedes' routing (`Aedes.prototype.publish`: retained store, offline queues, online subscribers)
// right after its record is appended, while aedes' PUBLISH handler still waits for the durable
// callback to write the PUBACK. After the PUBACK the handler calls `broker.publish` for the same
// packet object; `publishOnce` recognises it and does not route it a second time, it only
// reports the outcome of the early routing (waiting for it if it has not finished).
//
// State per packet, in a WeakMap keyed by the packet object (aedes passes the same object to
// authorizePublish and to publish): nothing to clean up when the publisher vanishes before its
// PUBACK and publish is never called. No closure per message: one shared callback, which aedes
// binds to its PublishState (`this.packet` is the packet given to publish).
import type { Aedes, Client, PublishPacket } from 'aedes'

type Done = (err?: Error | null) => void
type RouteFn = (packet: PublishPacket, client: Client | null, done: Done) => void
// ROUTING: started, not finished; null: routed; Error: routing failed; a function: aedes'
// publish callback, waiting for the routing to finish.
const ROUTING = true
type State = typeof ROUTING | null | Error | Done

interface PublishState { packet?: object }

export class EarlyRouting {
  private readonly states = new WeakMap<object, State>()
  private readonly routeNow: RouteFn
  private readonly routed: (this: PublishState | undefined, err?: Error | null) => void

  constructor (aedes: Aedes, onError: (err: Error) => void) {
    const states = this.states
    const original = aedes.publish as unknown as (this: Aedes, packet: PublishPacket, client: Client | null | Done, done?: Done) => void
    this.routeNow = (packet, client, done) => { original.call(aedes, packet, client, done) }

    this.routed = function routedEarly (this: PublishState | undefined, err?: Error | null): void {
      const result = err ?? null
      if (result !== null) onError(result)
      const packet = this?.packet
      if (packet === undefined) return
      const state = states.get(packet)
      if (typeof state === 'function') {
        states.delete(packet)
        state(result)
      } else if (state === ROUTING) {
        states.set(packet, result)
      }
    }

    // Replaces the instance's publish (aedes calls `client.broker.publish`); anything not routed
    // early (wills at QoS 0/2, $SYS, API publishes, QoS 0 and 2 client messages) passes through.
    const publishOnce = function publishOnce (packet: PublishPacket, client: Client | null | Done, done?: Done): void {
      const state = states.get(packet)
      // (A function: a publish of this packet already waits; a second one is not ours to skip.)
      if (state === undefined || typeof state === 'function') { original.call(aedes, packet, client, done); return }
      const callback = typeof client === 'function' ? client : done
      if (state === ROUTING) {
        // Still routing (a persistence call is pending): answer when it ends.
        states.set(packet, callback ?? noop)
        return
      }
      states.delete(packet)
      if (callback !== undefined) callback(state)
    }
    ;(aedes as unknown as { publish: typeof publishOnce }).publish = publishOnce
  }

  // Before the append: from here on a publish call for `packet` waits for route() instead of
  // routing it (an appender may fire its durable callback, and so the PUBACK and aedes' publish
  // call, before append returns).
  claim (packet: PublishPacket): void {
    this.states.set(packet, ROUTING)
  }

  // The append failed: nothing will be routed early; a waiting publish call gets the error.
  release (packet: PublishPacket, err: Error): void {
    const state = this.states.get(packet)
    this.states.delete(packet)
    if (typeof state === 'function') state(err)
  }

  // After the append: starts aedes' routing of the claimed `packet`; its publish call after the
  // PUBACK routes nothing.
  route (packet: PublishPacket, client: Client | null): void {
    this.routeNow(packet, client, this.routed)
  }
}

function noop (): void {}
