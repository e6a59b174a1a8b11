// Which live events make which store refetch or update. Stores refetch only once a
// screen has used them (`active`), so a role never asks for what it may not see.
import { debounce } from '../utils/debounce.js'

export const ALERT_KINDS = ['alert.raised', 'queue.alert', 'sync.backlog', 'auth.timeout', 'order.near_timeout', 'order.timeout']

export function wireLiveEvents(live, { queue, alerts, vip, devices, tasks, orders, customers, leads, rights, products }, { delayMs = 250 } = {}) {
  const whenActive = (store, fn) => () => {
    if (store.active) fn()
  }
  const reloadQueue = debounce(whenActive(queue, () => queue.load()), delayMs)
  const reloadDevices = debounce(whenActive(devices, () => devices.load()), delayMs)
  const reloadTasks = debounce(whenActive(tasks, () => tasks.load()), delayMs)
  const reloadOrders = debounce(whenActive(orders, () => orders.load()), delayMs)
  // The lobby's selling half: absent stores (older callers, tests) are simply not wired.
  const none = { active: false, load: () => {} }
  const [cs, ls, rs, ps] = [customers || none, leads || none, rights || none, products || none]
  const reloadCustomers = debounce(whenActive(cs, () => cs.load()), delayMs)
  const reloadLeads = debounce(whenActive(ls, () => ls.load()), delayMs)
  const reloadRights = debounce(whenActive(rs, () => rs.load()), delayMs)
  const reloadProducts = debounce(whenActive(ps, () => ps.load()), delayMs)

  const offs = [
    live.on(['ticket.*', 'queue.*', 'counter.*'], reloadQueue),
    live.on(ALERT_KINDS, (env) => {
      if (alerts.active) alerts.fromEvent(env)
    }),
    live.on('alert.acked', (env) => {
      const id = env.data && (env.data.id ?? env.data.alert_id)
      if (id !== undefined && id !== null) alerts.markAcked(id)
      else if (alerts.active) alerts.load()
    }),
    live.on('vip.arrived', (env) => vip.fromEvent(env)),
    live.on('vip.ticketed', (env) => vip.ticketed(env)),
    live.on(['device.*', 'printer.*'], reloadDevices),
    live.on('auth.*', reloadTasks),
    live.on('order.*', (env) => {
      reloadOrders()
      const id = env.data && (env.data.id ?? env.data.order_id)
      if (orders.current && id !== undefined && String(id) === orders.current.id) orders.open(orders.current.id)
    }),
    live.on(['customer.*', 'customers.*', 'vip.arrived', 'vip.ticketed', 'ticket.issued', 'ticket.called', 'ticket.served', 'ticket.no_show'], reloadCustomers),
    live.on(['lead.*', 'customer.arrived'], reloadLeads),
    live.on(['rights.*', 'customer.arrived', 'customer.upserted'], reloadRights),
    live.on(['product.*', 'device.transaction'], reloadProducts),
    live.on('resync', () => {
      reloadCustomers()
      reloadLeads()
      reloadRights()
      reloadProducts()
      reloadQueue()
      reloadDevices()
      reloadTasks()
      reloadOrders()
      if (alerts.active) alerts.load()
      if (vip.active) vip.load()
    }),
  ]
  return () => {
    offs.forEach((off) => off())
    ;[reloadQueue, reloadDevices, reloadTasks, reloadOrders, reloadCustomers, reloadLeads, reloadRights, reloadProducts].forEach((d) => d.cancel())
  }
}

/** The events the day's statistics count (the roll-ups' `wants` on the box). */
export const STATS_KINDS = [
  'ticket.issued', 'ticket.called', 'ticket.served', 'ticket.no_show',
  'device.transaction', 'device.consumable_used', 'device.status', 'device.exception', 'device.exception_resolved',
  'order.step',
]

/**
 * Keeps a statistics screen live: `load` runs `everyMs` after the first of the events that
 * change the figures, then at most once per `everyMs` while they keep coming (a busy lobby
 * never postpones it for good, as a debounce would), and at once on a resync.
 */
export function wireStats(live, load, { everyMs = 2000 } = {}) {
  let timer = null
  const soon = () => {
    if (timer) return
    timer = setTimeout(() => {
      timer = null
      load()
    }, everyMs)
  }
  const offs = [live.on(STATS_KINDS, soon), live.on('resync', load)]
  return () => {
    offs.forEach((off) => off())
    if (timer) clearTimeout(timer)
    timer = null
  }
}
