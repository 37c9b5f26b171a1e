// A DurableAppender for in-process broker tests that need no commitlog: every append is durable
// in the next setImmediate (offsets 100 bytes apart).
import type { DurableAppender } from '../../src/mqtt/broker.js'
import type { AppendInput, AppendResult, DurableCallback } from '../../src/commitlog/types.js'

export class ImmediateLog implements DurableAppender {
  private offset = 0
  append (_input: AppendInput, onDurable: DurableCallback): AppendResult {
    const offset = this.offset
    this.offset += 100
    setImmediate(onDurable, null)
    return { offset, nextOffset: this.offset, timestampMs: Date.now(), topicOffset: 0 }
  }
}
