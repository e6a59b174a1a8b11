// Which live events make which store refetch or update. Stores refetch only once a
// screen has used them (`active`), so a role never asks for what it may not see.
import { debounce } from '../utils/debounce.js'

export const ALERT_KINDS = ['alert.raised', 'queue.alert', 'sync.backlog', 'auth.timeout', 'order.near_timeout', 'order.timeout']

export function wireLiveEvents(live, { queue, alerts, vip, devices, tasks, orders }, { delayMs = 250 } = {}) {
  const whenActive = (store, fn) => () => {
    if (store.active) fn()
  }
  const reloadQueue = debounce(whenActive(queue, () => queue.load()), delayMs)
  const reloadDevices = debounce(whenActive(devices, () => devices.load()), delayMs)
  const reloadTasks = debounce(whenActive(tasks, () => tasks.load()), delayMs)
  const reloadOrders = debounce(whenActive(orders, () => orders.load()), delayMs)

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
    live.on('resync', () => {
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
    ;[reloadQueue, reloadDevices, reloadTasks, reloadOrders].forEach((d) => d.cancel())
  }
}
