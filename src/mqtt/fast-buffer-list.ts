// mqtt-packet's parser reads every header byte, length byte and packet id through bl's
// BufferList (readUInt8 16 call sites, readUInt16BE, toString for topics). bl implements each
// read as `this.slice(offset, offset + n)[method](0)`: a [buffer, offset] array plus a Buffer view
// per byte read, ~1 KB of garbage per QoS 1 message in a heap profile of the latency cell (young-
// generation garbage sets the broker's GC pauses). The subclass below reads straight from the
// first buffer when the bytes lie in it (nearly always: the parser consumes from the front) and
// falls back to bl's own code otherwise; results are identical.

interface ListInternals {
  _bufs: Buffer[]
  length: number
}

type ListClass = new () => object

export function withFastReads (List: ListClass): ListClass {
  const base = List.prototype as {
    readUInt8: (offset?: number) => number
    readUInt16BE: (offset?: number) => number
    readUInt32BE: (offset?: number) => number
    toString: (encoding?: BufferEncoding, start?: number, end?: number) => string
  }
  class FastReadList extends List {
    readUInt8 (this: ListInternals, offset = 0): number {
      const first = this._bufs[0]
      if (first !== undefined && offset >= 0 && offset < first.length) return first[offset] as number
      return base.readUInt8.call(this, offset)
    }

    readUInt16BE (this: ListInternals, offset = 0): number {
      const first = this._bufs[0]
      if (first !== undefined && offset >= 0 && offset + 2 <= first.length) return first.readUInt16BE(offset)
      return base.readUInt16BE.call(this, offset)
    }

    readUInt32BE (this: ListInternals, offset = 0): number {
      const first = this._bufs[0]
      if (first !== undefined && offset >= 0 && offset + 4 <= first.length) return first.readUInt32BE(offset)
      return base.readUInt32BE.call(this, offset)
    }

    override toString (this: ListInternals, encoding?: BufferEncoding, start?: number, end?: number): string {
      const first = this._bufs[0]
      const s = start ?? 0
      const e = end ?? this.length
      if (first !== undefined && s >= 0 && s <= e && e <= first.length) return first.toString(encoding, s, e)
      return base.toString.call(this, encoding, start, end)
    }
  }
  return FastReadList
}
