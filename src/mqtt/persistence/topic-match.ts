// MQTT topic filter matching without allocation (no split, no regex): it runs once per log record
// per session during a replay.
//   '+' matches exactly one level, possibly empty; '#' (last) matches the parent and any number of
//   levels below [MQTT-4.7.1-2]; a filter starting with a wildcard does not match topics that
//   start with '$' [MQTT-4.7.2-1].
const SLASH = 47
const PLUS = 43
const HASH = 35
const DOLLAR = 36

export function topicMatches (filter: string, topic: string): boolean {
  const fl = filter.length
  const tl = topic.length
  if (tl > 0 && topic.charCodeAt(0) === DOLLAR && fl > 0) {
    const first = filter.charCodeAt(0)
    if (first === PLUS || first === HASH) return false
  }
  let f = 0
  let t = 0
  while (f < fl) {
    const c = filter.charCodeAt(f)
    if (c === HASH) return true
    if (c === PLUS) {
      while (t < tl && topic.charCodeAt(t) !== SLASH) t++
      f++
    } else {
      while (f < fl && filter.charCodeAt(f) !== SLASH) {
        if (t >= tl || topic.charCodeAt(t) !== filter.charCodeAt(f)) return false
        f++
        t++
      }
      if (t < tl && topic.charCodeAt(t) !== SLASH) return false
    }
    // Both at the end of a level.
    if (f >= fl) return t >= tl
    f++ // the filter's '/'
    if (t >= tl) return f + 1 === fl && filter.charCodeAt(f) === HASH
    t++ // the topic's '/'
  }
  return t >= tl
}
