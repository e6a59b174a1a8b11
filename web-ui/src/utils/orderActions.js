// What staff may do to an order, from its status and its steps, mirroring the box's own
// checks (agent/src/orders/model.rs): a button the box would refuse with 409 is not shown.

const OPEN = ['created', 'approved', 'executing', 'recalled']
const RUNNING = ['active', 'near_timeout', 'timeout']

/** Whether the order is still open (not delivered, cancelled or rejected). */
export const isOpen = (order) => Boolean(order) && OPEN.includes(order.status)

/** The running step of an order, if any. */
export function runningStep(order) {
  return (order && order.steps ? order.steps : []).find((s) => RUNNING.includes(s.state)) || null
}

/** The step that may start next: the first not done, when none is running. */
export function nextStep(order) {
  if (!order || !['approved', 'executing', 'recalled'].includes(order.status)) return null
  const steps = order.steps || []
  if (runningStep(order)) return null
  const s = steps.find((x) => x.state !== 'done')
  return s && s.state === 'pending' ? s : null
}

/**
 * The actions on `order`, in the order the PAD shows them: `{ action, step? }` with
 * `action` one of approve, reject, start, finish, deliver, recall, urge, handover.
 */
export function orderActions(order) {
  if (!order) return []
  const out = []
  const st = order.status
  if (st === 'created') out.push({ action: 'approve' })
  const next = nextStep(order)
  if (next) out.push({ action: 'start', step: next })
  const running = st === 'executing' ? runningStep(order) : null
  if (running) out.push({ action: 'finish', step: running })
  const steps = order.steps || []
  if (st === 'executing' && steps.length > 0 && steps.every((s) => s.state === 'done')) out.push({ action: 'deliver' })
  if (running) out.push({ action: 'recall', step: running })
  if (isOpen(order)) out.push({ action: 'urge' })
  if (isOpen(order)) out.push({ action: 'handover' })
  if (st === 'created' || st === 'approved') out.push({ action: 'reject' })
  return out
}

const sameDay = (a, b) => a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate()

/**
 * The orders `filter` lets through: `status` and `business_type` ('' for any), `today`
 * (booked for today, or created today when not booked), `overdue` (the box's mark: a step
 * past its limit, or a customer late for the appointment) and `mine` (assigned to `me`).
 */
export function filterOrders(list, filter = {}, { me = null, now = Date.now() } = {}) {
  const day = new Date(now)
  return (list || []).filter((o) => {
    if (filter.status && o.status !== filter.status) return false
    if (filter.business_type && o.business_type !== filter.business_type) return false
    if (filter.overdue && o.overdue !== true) return false
    if (filter.mine && (!me || o.assignee !== me)) return false
    if (filter.today) {
      const at = new Date(o.appointment_at || o.created_at || NaN)
      if (Number.isNaN(at.getTime()) || !sameDay(at, day)) return false
    }
    return true
  })
}
