// The cloud broker's aedes persistence: persistent sessions (clean=false) of cloud subscribers
// go to the SessionManager (cluster-wide records, delivery from the store by a follower), and
// everything else (retained messages, wills, inbound QoS 2 state) to the node's own persistence
// (`inner`, the edge's adapter over this node's MetaStore, see ../sessions.ts).
//
// Store records reach connected clients through aedes' mqemitter too (the dispatcher publishes
// them for clean-session subscribers). For a persistent session that would be a second copy,
// so authorizeForward drops those for clean=false clients: dispatcher packets are the ones with
// a brokerId and no publishing clientId. Messages that other cloud apps publish (downlinks) do
// reach a connected persistent subscriber live, but are not queued for it while it is offline
// (they are not in the store; see cloud/README.md "Sessions").
import { Readable } from 'node:stream'
import type { Aedes, Client } from 'aedes'
import type { LogPersistence } from '../../src/mqtt/persistence.js'
import { FOLLOWER_BROKER_ID } from './follower.js'
import { OTHER_MIN_PACKET_ID } from './record.js'
import type { SessionClient, SessionManager } from './manager.js'

interface ClientLike { id: string, clean?: boolean }
interface PacketLike { messageId?: number, brokerId?: string | null, brokerCounter?: number, clientId?: string, cmd?: string }

export class ClusterSessionPersistence {
  // Last packet id given to another app's message, per persistent-session client.
  private readonly otherIds = new WeakMap<object, number>()

  constructor (private readonly inner: LogPersistence, private readonly sessions: SessionManager) {}

  private otherPacketId (client: object): number {
    const last = this.otherIds.get(client) ?? 0xFFFF
    const id = last >= 0xFFFF ? OTHER_MIN_PACKET_ID : last + 1
    this.otherIds.set(client, id)
    return id
  }

  get broker (): unknown { return this.inner.broker }

  async setup (broker: Aedes): Promise<void> {
    await this.inner.setup(broker as never)
    // Chained: whatever the broker already decides (aedes' default forwards everything) still applies.
    const previous = broker.authorizeForward.bind(broker)
    broker.authorizeForward = (client: Client, packet) => {
      const p = packet as PacketLike
      if (client.clean || p.brokerId === FOLLOWER_BROKER_ID) return previous(client, packet)
      if (typeof p.brokerId === 'string' && p.brokerId !== '' && p.clientId === undefined) return null
      // Live and retained messages of other cloud apps: numbered here, above the followers' ids
      // (record.ts), so the two never collide; aedes' QoSPacket keeps a messageId it is given.
      // A copy: the packet is shared by every subscriber.
      const out = previous(client, packet)
      if (out === null || out === undefined || out.qos === 0) return out
      return { ...out, messageId: this.otherPacketId(client) }
    }
    broker.on('client', (client) => { if (!client.clean) this.sessions.bind(client as unknown as SessionClient) })
    broker.on('clientReady', (client) => { if (!client.clean) this.sessions.ready(client as unknown as SessionClient) })
    broker.on('clientDisconnect', (client) => {
      if (!client.clean) void this.sessions.detach(client as unknown as SessionClient).catch(() => {})
    })
  }

  async destroy (): Promise<void> {
    await this.sessions.close()
    await this.inner.destroy()
  }

  // ------------------------------------------------------------ sessions (clean=false)

  async subscriptionsByClient (client: ClientLike): Promise<Array<{ topic: string, qos: number }>> {
    // aedes calls this only at a CONNECT with clean=false (fetchSubs): take the session here.
    let subs: Array<{ topic: string, qos: number }> = await this.sessions.open(client.id)
    // A session kept by an earlier version in the node's own persistence: its subscriptions move
    // to the session record (its queued copies do not), and it is removed there, so the node
    // stops queueing copies for it.
    const legacy = await this.inner.subscriptionsByClient(client)
    if (legacy.length > 0) {
      if (subs.length === 0) {
        await this.sessions.addSubscriptions(client.id, legacy)
        subs = legacy
      }
      await this.inner.cleanSubscriptions(client)
    }
    return subs.map((s) => ({ topic: s.topic, qos: s.qos }))
  }

  async addSubscriptions (client: ClientLike, subs: Array<{ topic: string, qos: number }>): Promise<void> {
    if (client.clean === true) { await this.inner.addSubscriptions(client, subs); return }
    await this.sessions.addSubscriptions(client.id, subs)
  }

  async removeSubscriptions (client: ClientLike, topics: string[]): Promise<void> {
    if (client.clean !== true) await this.sessions.removeSubscriptions(client.id, topics)
    await this.inner.removeSubscriptions(client, topics)
  }

  async cleanSubscriptions (client: ClientLike): Promise<void> {
    await this.sessions.clean(client.id)
    await this.inner.cleanSubscriptions(client)
  }

  async outgoingUpdate (client: ClientLike, packet: PacketLike): Promise<void> {
    // A follower's PUBLISH carries the packet id the follower gave it (follower.ts).
    if (packet.brokerId === FOLLOWER_BROKER_ID) return
    if (client.clean === false) {
      if (packet.cmd === 'pubrel') {
        // aedes got a PUBREC and sends the PUBREL once this resolves: for a follower's message,
        // once the record holds that state (a reconnect re-sends this PUBREL, not the PUBLISH).
        if (packet.messageId !== undefined) await this.sessions.pubrec(client.id, packet.messageId)
        return
      }
      // A message of another cloud app (numbered in authorizeForward): not queued while the
      // client is offline (README).
      return
    }
    await this.inner.outgoingUpdate(client, packet as never)
  }

  async outgoingClearMessageId (client: ClientLike, packet: PacketLike): Promise<object | undefined> {
    if (client.clean === false) {
      if (packet.messageId !== undefined) this.sessions.ack(client.id, packet.messageId)
      return packet
    }
    return await this.inner.outgoingClearMessageId(client, packet as never)
  }

  outgoingStream (client: ClientLike): Readable {
    // aedes sends these right after CONNACK, before 'clientReady' starts the follower, which then
    // re-sends the unacknowledged PUBLISHes with their ids [MQTT-4.4.0-1]. Here: the PUBRELs of
    // QoS 2 messages whose PUBREC came and whose PUBCOMP did not, with their ids.
    if (client.clean === false) return Readable.from(this.sessions.pendingReleases(client.id).map((messageId) => ({ cmd: 'pubrel', messageId })))
    return this.inner.outgoingStream(client)
  }

  // ------------------------------------------------------------ delegated

  async subscriptionsByTopic (topic: string): Promise<unknown[]> { return await this.inner.subscriptionsByTopic(topic) }
  async countOffline (): Promise<{ subsCount: number, clientsCount: number }> { return await this.inner.countOffline() }
  getClientList (topic: string): Readable { return this.inner.getClientList(topic) }
  async outgoingEnqueue (sub: { clientId: string, qos?: number }, packet: object): Promise<void> { await this.inner.outgoingEnqueue(sub, packet as never) }
  async outgoingEnqueueCombi (subs: Array<{ clientId: string, qos?: number }>, packet: object): Promise<void> { await this.inner.outgoingEnqueueCombi(subs, packet as never) }
  async storeRetained (packet: object): Promise<void> { await this.inner.storeRetained(packet as never) }
  createRetainedStream (pattern: string): Readable { return this.inner.createRetainedStream(pattern) }
  createRetainedStreamCombi (patterns: string[]): Readable { return this.inner.createRetainedStreamCombi(patterns) }
  async incomingStorePacket (client: ClientLike, packet: object): Promise<void> { await this.inner.incomingStorePacket(client, packet as never) }
  async incomingGetPacket (client: ClientLike, packet: object): Promise<object> { return await this.inner.incomingGetPacket(client, packet as never) }
  async incomingDelPacket (client: ClientLike, packet: object): Promise<void> { await this.inner.incomingDelPacket(client, packet as never) }
  async cleanIncoming (client: ClientLike): Promise<void> { await this.inner.cleanIncoming(client) }
  async putWill (client: ClientLike, packet: object): Promise<void> { await this.inner.putWill(client, packet as never) }
  async getWill (client: ClientLike): Promise<object | undefined> { return await this.inner.getWill(client) }
  async delWill (client: ClientLike): Promise<object | undefined> { return await this.inner.delWill(client) }
  streamWill (brokers?: Record<string, unknown>): Readable { return this.inner.streamWill(brokers) }
}
