// Tolerant readers of API answers: missing parts become empty, never a crash.

const arr = (v) => (Array.isArray(v) ? v : [])
const obj = (v) => (v && typeof v === 'object' && !Array.isArray(v) ? v : {})
const num = (v) => (v === null || v === undefined || v === '' || !Number.isFinite(Number(v)) ? null : Number(v))

/** A list answer may be a bare array or wrapped as {items|data|<key>: [...]}. */
export function listOf(body, key) {
  if (Array.isArray(body)) return body
  const o = obj(body)
  return arr(o[key] ?? o.items ?? o.data)
}

/** `why` may be a code, a list of codes, or {code, params} objects. */
export function whyList(why) {
  if (why === null || why === undefined || why === '') return []
  const items = Array.isArray(why) ? why : [why]
  return items
    .map((w) => (typeof w === 'string' ? { code: w, params: {} } : { code: (w && w.code) || '', params: obj(w && w.params) }))
    .filter((w) => w.code)
}

export function normalizeQueue(body) {
  const o = obj(body)
  const waiting = arr(o.waiting).map((t, i) => ({
    ...t,
    number: String(t.number ?? ''),
    service: t.service ?? '',
    priority: num(t.priority) ?? 0,
    waited_s: num(t.waited_s),
    position: num(t.position) ?? i + 1,
    why: whyList(t.why),
  }))
  const counters = arr(o.counters).map((c) => ({
    ...c,
    id: String(c.id ?? ''),
    services: arr(c.services),
    open: c.open !== false,
    staff: typeof c.staff === 'string' && c.staff ? c.staff : null,
    since: typeof c.since === 'string' ? c.since : null,
    current: c.current && typeof c.current === 'object' ? c.current : c.serving && typeof c.serving === 'object' ? c.serving : null,
  }))
  const services = arr(o.services).map((s) => (typeof s === 'string' ? { code: s } : { ...s, code: s.code ?? s.service }))
  return { waiting, counters, services }
}

/**
 * Waiting figures per service: count, longest and average wait. Uses the box's
 * `services` entries when it sends them, the waiting list otherwise.
 */
export function serviceFigures(queue) {
  const by = new Map()
  const ensure = (code) => {
    if (!by.has(code)) by.set(code, { code, name: null, waiting: 0, longest_s: null, avg_s: null, target_s: null, _sum: 0, _n: 0 })
    return by.get(code)
  }
  for (const s of queue.services) {
    const f = ensure(s.code)
    f.name = s.name ?? null
    f.target_s = num(s.target_wait_s)
  }
  for (const c of queue.counters) for (const code of c.services) ensure(code)
  for (const t of queue.waiting) {
    const f = ensure(t.service)
    f.waiting++
    if (t.waited_s !== null) {
      f._sum += t.waited_s
      f._n++
      f.longest_s = Math.max(f.longest_s ?? 0, t.waited_s)
    }
  }
  for (const s of queue.services) {
    const f = by.get(s.code)
    if (num(s.waiting) !== null) f.waiting = num(s.waiting)
    if (num(s.longest_wait_s) !== null) f.longest_s = num(s.longest_wait_s)
    if (num(s.avg_wait_s) !== null) { f._sum = num(s.avg_wait_s); f._n = 1 }
  }
  return [...by.values()].map(({ _sum, _n, ...f }) => ({ ...f, avg_s: _n ? Math.round(_sum / _n) : null }))
}

export function normalizeAlert(a) {
  const o = obj(a)
  return {
    ...o,
    id: o.id !== undefined && o.id !== null ? String(o.id) : null,
    kind: o.kind || o.code || 'alert',
    level: ['info', 'warn', 'warning', 'critical', 'error'].includes(o.level) ? (o.level === 'warning' ? 'warn' : o.level === 'error' ? 'critical' : o.level) : 'info',
    message: o.message || o.text || '',
    ts: o.ts || o.raised_at || null,
    acked: Boolean(o.acked),
  }
}

/** An alert from an SSE envelope (`alert.raised`, `queue.alert`, `sync.backlog`, ...). */
export function alertFromEvent(env) {
  const d = obj(env.data)
  const inner = d.alert && typeof d.alert === 'object' ? d.alert : d
  return normalizeAlert({
    kind: env.kind === 'alert.raised' ? inner.kind : inner.kind || env.kind,
    level: inner.level || (env.kind === 'queue.alert' || env.kind === 'sync.backlog' ? 'warn' : 'info'),
    ts: inner.ts || env.ts,
    ...inner,
    id: inner.id ?? inner.alert_id ?? null,
  })
}

export function normalizeDevice(d) {
  const o = obj(d)
  const cash = obj(o.cash)
  return {
    ...o,
    id: String(o.id ?? ''),
    kind: o.kind || 'stm',
    online: Boolean(o.online),
    state: o.state || null,
    modules: obj(o.modules),
    consumables: obj(o.consumables),
    cash: { ...cash, cassettes: arr(cash.cassettes) },
    open_exceptions: Array.isArray(o.open_exceptions) ? o.open_exceptions.length : num(o.open_exceptions) ?? 0,
    exceptions: Array.isArray(o.open_exceptions) ? o.open_exceptions : arr(o.exceptions),
  }
}

/** The exceptions named by a 409 `open_exceptions` refusal (tolerant of where they sit). */
export function exceptionsFromError(err) {
  const d = obj(err && err.details)
  const list = arr(d.exceptions ?? d.open_exceptions ?? obj(d.details).exceptions)
  return list.map((e) => (typeof e === 'string' ? { id: e, code: e, message: '' } : { ...e, id: String(e.id ?? e.exc_id ?? e.event_id ?? '') }))
}

export function normalizeTask(t) {
  const o = obj(t)
  const customer = obj(o.customer)
  return {
    ...o,
    id: String(o.id ?? o.request_id ?? ''),
    device_id: o.device_id || o.device || null,
    txn_type: o.txn_type || null,
    customer: { name: customer.name || null, id_number_masked: customer.id_number_masked || null, ...customer },
    elements: obj(o.elements),
    reason: o.reason || null,
    state: o.state || o.status || 'pending',
    ts: o.ts || o.created_at || o.requested_at || null,
    deadline: o.deadline || o.expires_at || null,
  }
}

const STEP_STATES = ['pending', 'active', 'done', 'near_timeout', 'timeout', 'skipped', 'cancelled']

export function normalizeOrderStep(s, i) {
  const o = obj(s)
  return {
    ...o,
    key: o.key || o.name || `step-${i}`,
    name: o.name || o.title || o.key || `#${i + 1}`,
    state: STEP_STATES.includes(o.state) ? o.state : o.finished_at ? 'done' : o.started_at ? 'active' : 'pending',
    started_at: o.started_at || null,
    finished_at: o.finished_at || null,
    sla_s: num(o.sla_s ?? o.target_s),
    elapsed_s: num(o.elapsed_s),
  }
}

export function normalizeOrder(body) {
  const o = obj(body)
  const steps = arr(o.steps).map(normalizeOrderStep)
  const current = o.current_step ? normalizeOrderStep(o.current_step, 0) : steps.find((s) => s.state === 'active' || s.state === 'near_timeout' || s.state === 'timeout') || null
  const customer = obj(o.customer)
  return {
    ...o,
    id: String(o.id ?? ''),
    title: o.title || o.product || o.type || '',
    status: o.status || o.state || 'created',
    customer_name: o.customer_name || customer.name || null,
    ticket: o.ticket || o.ticket_number || null,
    appointment_at: o.appointment_at || o.scheduled_at || null,
    steps,
    current_step: current,
    fields: obj(o.fields),
  }
}

/** A step's timer state at `now`: elapsed seconds and ok / near / over its SLA. */
export function stepTimer(step, now = Date.now()) {
  if (!step) return { elapsed_s: null, level: 'none' }
  let elapsed = step.elapsed_s
  if (step.started_at) {
    const start = new Date(step.started_at).getTime()
    const end = step.finished_at ? new Date(step.finished_at).getTime() : now
    if (Number.isFinite(start) && Number.isFinite(end)) elapsed = Math.max(0, Math.floor((end - start) / 1000))
  }
  if (step.state === 'timeout') return { elapsed_s: elapsed, level: 'over' }
  if (elapsed === null || !step.sla_s) return { elapsed_s: elapsed, level: step.state === 'near_timeout' ? 'near' : 'ok' }
  const ratio = elapsed / step.sla_s
  return { elapsed_s: elapsed, level: ratio >= 1 ? 'over' : ratio >= 0.8 || step.state === 'near_timeout' ? 'near' : 'ok' }
}

/** Statistics: every part optional. */
export function normalizeStats(body) {
  const o = obj(body)
  const tickets = obj(o.tickets)
  const byService = arr(tickets.by_service ?? o.tickets_by_service).map((s) => ({
    service: s.service ?? s.code ?? '',
    name: s.name ?? null,
    issued: num(s.issued ?? s.count) ?? 0,
    served: num(s.served) ?? null,
    avg_wait_s: num(s.avg_wait_s),
    max_wait_s: num(s.max_wait_s),
  }))
  const txns = arr(obj(o.transactions).by_type ?? o.transactions_by_type).map((t) => ({
    txn_type: t.txn_type ?? t.type ?? 'other',
    count: num(t.count) ?? 0,
    amount: num(t.amount),
  }))
  const consumables = arr(obj(o.consumables).items).map((c) => ({
    item: c.item ?? '',
    device_id: c.device_id ?? null,
    remaining: num(c.remaining),
    used_today: num(c.used_today),
    daily_use: num(c.daily_use),
    days_left: num(c.days_left),
    runs_out_on: c.runs_out_on ?? null,
  }))
  // The fields of the `StatsToday` schema (agent/src/stats/openapi.json), shared with the box.
  const cassettes = arr(obj(o.cash).cassettes).map((c) => ({
    device_id: c.device_id ?? null,
    id: c.id ?? '',
    denom: num(c.denom),
    count: num(c.count),
    cash_in: num(c.cash_in),
    cash_out: num(c.cash_out),
  }))
  return { date: o.date ?? null, byService, txns, consumables, cassettes }
}

/** `GET /api/v1/stats/period` (schema `StatsPeriod`): every list present, numbers or null. */
export function normalizePeriod(body) {
  const o = obj(body)
  const part = (k, lists) => {
    const p = obj(o[k])
    return Object.fromEntries(lists.map((l) => [l, arr(p[l]).map((x) => obj(x))]))
  }
  return {
    from: o.from ?? null,
    to: o.to ?? null,
    by: o.by ?? 'day',
    tickets: part('tickets', ['by_service', 'series']),
    arrivals: part('arrivals', ['series']),
    counters: part('counters', ['by_counter']),
    transactions: part('transactions', ['by_type', 'series']),
    vouchers: part('vouchers', ['by_kind', 'series']),
    cash: part('cash', ['by_device', 'series', 'cassettes', 'cycles']),
    exceptions: part('exceptions', ['by_kind']),
    steps: part('steps', ['by_step']),
  }
}

function forecastSeries(s) {
  const x = obj(s)
  return {
    ...x,
    model: x.model ?? 'none',
    history_days: num(x.history_days) ?? 0,
    days: arr(x.days).map((d) => ({
      date: d.date ?? '',
      point: num(d.point) ?? 0,
      lo80: num(d.lo80) ?? 0,
      hi80: num(d.hi80) ?? 0,
      lo95: num(d.lo95) ?? 0,
      hi95: num(d.hi95) ?? 0,
      closed: d.closed === true,
    })),
  }
}

/** `GET /api/v1/stats/forecast` (schema `StatsForecast`). */
export function normalizeForecast(body) {
  const o = obj(body)
  const cal = obj(o.calendar)
  return {
    from: o.from ?? null,
    horizon_days: num(o.horizon_days) ?? 0,
    tickets: arr(o.tickets).map(forecastSeries),
    transactions: arr(o.transactions).map(forecastSeries),
    vouchers: arr(o.vouchers).map((v) => ({ ...forecastSeries(v), remaining: num(v.remaining), days_left: num(v.days_left), runs_out_on: v.runs_out_on ?? null, reorder: v.reorder === true })),
    cash: arr(o.cash).map((c) => ({
      ...forecastSeries(c),
      on_hand: num(c.on_hand),
      days_until_empty: num(c.days_until_empty),
      empty_on: c.empty_on ?? null,
      replenish: c.replenish === true,
      cassettes: arr(c.cassettes).map((k) => ({ cassette: k.cassette ?? '', denom: num(k.denom), count: num(k.count), days_until_empty: num(k.days_until_empty), empty_on: k.empty_on ?? null })),
    })),
    calendar: { closed_days: arr(cal.closed_days), working_days: arr(cal.working_days) },
  }
}

/** `GET /api/v1/stats/staffing` (schema `StatsStaffing`). */
export function normalizeStaffing(body) {
  const o = obj(body)
  return {
    from: o.from ?? null,
    served_within: num(o.served_within) ?? 0.9,
    hours: arr(o.hours).map((h) => ({
      date: h.date ?? '',
      hour: num(h.hour) ?? 0,
      service: h.service ?? '',
      arrivals: num(h.arrivals) ?? 0,
      service_s: num(h.service_s),
      service_s_measured: h.service_s_measured === true,
      target_wait_s: num(h.target_wait_s),
      needed: num(h.needed) ?? 0,
      planned: num(h.planned) ?? 0,
    })),
  }
}

const ID_KEYS = ['name', 'gender', 'nation', 'birth_date', 'address', 'id_number']
const LICENCE_KEYS = ['name', 'credit_code', 'type', 'legal_person', 'registered_capital', 'established', 'term', 'address', 'scope']

export function fieldKeysFor(kind) {
  return kind === 'licence' ? LICENCE_KEYS : ID_KEYS
}

const squash = (v) => String(v ?? '').replace(/\s+/g, '').toUpperCase()

/**
 * Rows of an OCR answer for the form: known keys first (absent ones marked missing),
 * then any extra keys. Chip mismatches come from `mismatches` or are computed from `chip`.
 */
export function ocrRows(result) {
  const r = obj(result)
  const kind = r.kind === 'licence' || r.kind === 'business_licence' ? 'licence' : 'id_card'
  const fields = obj(r.fields)
  const keys = [...fieldKeysFor(kind), ...Object.keys(fields).filter((k) => !fieldKeysFor(kind).includes(k))]
  // The box's answer: chip_check {fields: {key: verdict}, mismatches: [key], chip: {key: value}}.
  const check = r.chip_check && typeof r.chip_check === 'object' ? r.chip_check : null
  const chipObj = check ? obj(check.chip) : obj(r.chip && r.chip.fields ? r.chip.fields : r.chip)
  const chip = {}
  for (const [k, v] of Object.entries(chipObj)) chip[k] = v && typeof v === 'object' && 'value' in v ? v.value : v
  const mismatches = check ? check.mismatches : r.mismatches
  const mismatch = new Map()
  for (const m of arr(mismatches)) {
    const key = typeof m === 'string' ? m : m.field
    if (key) mismatch.set(key, typeof m === 'string' ? chip[key] ?? null : m.chip ?? chip[key] ?? null)
  }
  if (!Array.isArray(mismatches)) {
    for (const [k, v] of Object.entries(chip)) {
      const f = fields[k]
      if (f && f.value !== undefined && v !== undefined && v !== null && squash(f.value) !== squash(v)) mismatch.set(k, v)
    }
  }
  return {
    kind,
    rows: keys.map((key) => {
      const f = obj(fields[key])
      return {
        key,
        value: f.value ?? '',
        found: fields[key] !== undefined && f.value !== undefined,
        confidence: num(f.confidence),
        valid: typeof f.valid === 'boolean' ? f.valid : null,
        chip: key in chip ? chip[key] : null,
        mismatch: mismatch.has(key),
        chipValue: mismatch.has(key) ? mismatch.get(key) : null,
      }
    }),
  }
}
