// Live events: one EventSource on /api/v1/events, events dispatched by kind.

/**
 * Kinds the PAD subscribes to. With `event: <kind>` on the wire, EventSource only
 * delivers named events to listeners registered for that exact name, so every kind a
 * screen reacts to is listed here. Unnamed events (`message`) are handled too.
 */
export const KNOWN_KINDS = [
  'ticket.issued', 'ticket.called', 'ticket.recalled', 'ticket.skipped', 'ticket.transferred',
  'ticket.moved', 'ticket.urged', 'ticket.served', 'ticket.no_show', 'ticket.reprint', 'ticket.printed',
  'ticket.rated',
  'queue.alert', 'queue.changed', 'counter.opened', 'counter.closed',
  'alert.raised', 'alert.acked', 'alert.cleared',
  'vip.arrived', 'vip.ticketed',
  'device.online', 'device.offline', 'device.status', 'device.signed_in', 'device.signed_out',
  'device.exception', 'device.exception_resolved', 'device.command', 'device.transaction',
  'device.consumable_used', 'device.card_read',
  'printer.status', 'auth.requested', 'auth.decided', 'auth.timeout',
  'order.created', 'order.updated', 'order.step', 'order.cancelled', 'order.completed',
  'order.near_timeout', 'order.timeout', 'order.arrived', 'order.recalled', 'order.rated',
  'order.urged', 'order.handed_over', 'order.overdue', 'order.customer_filled',
  'ocr.completed', 'ocr.image_deleted', 'sync.backlog',
  'product.upserted', 'product.deleted',
  'customer.arrived', 'customer.identified', 'customer.upserted', 'customer.deleted', 'customers.purged',
  'customer.walkin_recorded',
  'lead.received', 'lead.feedback',
  'rights.granted', 'rights.revoked', 'rights.redeemed',
]

/** Parses one SSE message into an envelope; returns null for data that is not one. */
export function parseEnvelope(data, lastEventId, eventName) {
  let env
  try {
    env = JSON.parse(data)
  } catch {
    return null
  }
  if (!env || typeof env !== 'object') return null
  if (!env.kind && eventName && eventName !== 'message') env.kind = eventName
  if (env.seq === undefined && lastEventId !== undefined && lastEventId !== '' && !Number.isNaN(Number(lastEventId))) {
    env.seq = Number(lastEventId)
  }
  if (typeof env.seq === 'string' && env.seq !== '') env.seq = Number(env.seq)
  if (!env.kind) return null
  if (env.data === undefined || env.data === null) env.data = {}
  return env
}

/** True when `pattern` ("ticket.*", "vip.arrived", "*") covers `kind`. */
export function kindMatches(pattern, kind) {
  if (pattern === '*') return true
  if (pattern.endsWith('.*')) return kind.startsWith(pattern.slice(0, -1))
  return pattern === kind
}

/** A small pub/sub keyed by kind patterns. Handler errors are reported, never swallowed. */
export function createDispatcher({ onHandlerError = (e) => console.error(e) } = {}) {
  const subs = new Set()
  return {
    on(pattern, handler) {
      const patterns = Array.isArray(pattern) ? pattern : [pattern]
      const sub = { patterns, handler }
      subs.add(sub)
      return () => subs.delete(sub)
    },
    dispatch(env) {
      let n = 0
      for (const sub of [...subs]) {
        if (!sub.patterns.some((p) => kindMatches(p, env.kind))) continue
        n++
        try {
          sub.handler(env)
        } catch (e) {
          onHandlerError(e, env)
        }
      }
      return n
    },
    get size() {
      return subs.size
    },
  }
}

/**
 * Opens the stream. EventSource reconnects by itself (sending Last-Event-ID) after a
 * network drop. If the server closes it for good (readyState CLOSED, e.g. a 401 or a
 * restart), `onClosed` decides; we reopen with a growing delay and pass the last seq as
 * `last_event_id`, since a new EventSource cannot set the header.
 */
export function createEventStream({
  url = '/api/v1/events',
  EventSourceImpl = globalThis.EventSource,
  onEvent,
  onStatus = () => {},
  onGap = () => {},
  onClosed = async () => true,
  kinds = KNOWN_KINDS,
  setTimeoutImpl = (fn, ms) => setTimeout(fn, ms),
} = {}) {
  let es = null
  let lastSeq = null
  let stopped = false
  let retry = 0
  let timer = null

  function handle(msg, eventName) {
    const env = parseEnvelope(msg.data, msg.lastEventId, eventName)
    if (!env) return
    if (typeof env.seq === 'number' && Number.isFinite(env.seq)) {
      if (lastSeq !== null && env.seq <= lastSeq) return // duplicate after a resume
      if (lastSeq !== null && env.seq > lastSeq + 1) onGap(lastSeq, env.seq)
      lastSeq = env.seq
    }
    onEvent(env)
  }

  function open() {
    if (stopped) return
    const full = lastSeq !== null ? `${url}${url.includes('?') ? '&' : '?'}last_event_id=${lastSeq}` : url
    onStatus('connecting')
    es = new EventSourceImpl(full, { withCredentials: true })
    es.onopen = () => {
      retry = 0
      onStatus('open')
    }
    es.onmessage = (m) => handle(m, 'message')
    for (const k of kinds) es.addEventListener(k, (m) => handle(m, k))
    es.onerror = () => {
      if (stopped) return
      if (es.readyState === 2 /* CLOSED */) {
        onStatus('closed')
        es.close()
        es = null
        const delay = Math.min(30000, 1000 * 2 ** retry)
        retry++
        timer = setTimeoutImpl(async () => {
          timer = null
          let again = false
          try {
            again = await onClosed()
          } catch (e) {
            console.error(e)
            again = true
          }
          if (again) open()
        }, delay)
      } else {
        onStatus('reconnecting')
      }
    }
  }

  return {
    start() {
      stopped = false
      if (!es && !timer) open()
    },
    stop() {
      stopped = true
      if (timer) clearTimeout(timer)
      timer = null
      if (es) es.close()
      es = null
      onStatus('stopped')
    },
    get lastSeq() {
      return lastSeq
    },
  }
}
