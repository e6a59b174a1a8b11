// A small stand-in for the branchd HTTP API, for UI development and the browser
// smoke test: serves dist/ and answers /api/v1 with in-memory state and live SSE.
// It follows the shapes documented in README.md; it is not the daemon.
//   node e2e/mock-server.mjs [--port 8099]
import { createServer } from 'node:http'
import { readFileSync, existsSync, statSync } from 'node:fs'
import { extname, join, normalize } from 'node:path'
import { randomUUID } from 'node:crypto'
import { deflateSync } from 'node:zlib'
import { statsForecast, statsPeriod, statsStaffing, statsToday } from './stats-fixture.mjs'

const args = process.argv.slice(2)
const port = Number(args[args.indexOf('--port') + 1] || process.env.PORT || 8099)
const distDir = new URL('../dist/', import.meta.url).pathname

const USERS = {
  lobby: { password: 'lobby123', role: 'lobby_manager', display_name: '王经理' },
  admin: { password: 'admin123', role: 'device_admin', display_name: '李工' },
  super: { password: 'super123', role: 'supervisor', display_name: '赵主管' },
  boss: { password: 'boss123', role: 'branch_manager', display_name: '陈行长' },
}
const sessions = new Map()
const now = () => new Date().toISOString()
const ago = (s) => new Date(Date.now() - s * 1000).toISOString()

// ---------------- state ----------------
const services = [
  { code: 'personal', prefix: 'A', name: '个人业务', target_wait_s: 900 },
  { code: 'corporate', prefix: 'B', name: '对公业务', target_wait_s: 600 },
  { code: 'vip', prefix: 'V', name: '贵宾业务', target_wait_s: 300 },
]
const seqs = { personal: 8, corporate: 3, vip: 1 }
let waiting = [
  { number: 'V001', service: 'vip', priority: 10, issued: ago(240), customer_level: 'platinum', why: ['vip'] },
  { number: 'A005', service: 'personal', priority: 5, issued: ago(300), why: ['appointment'], appointment_id: 'ORD-1002' },
  { number: 'B002', service: 'corporate', priority: 0, issued: ago(820), why: [] },
  { number: 'A006', service: 'personal', priority: 0, issued: ago(600), why: [] },
  { number: 'A007', service: 'personal', priority: 0, issued: ago(420), why: [] },
  { number: 'B003', service: 'corporate', priority: 0, issued: ago(380), why: [] },
  { number: 'A008', service: 'personal', priority: 0, issued: ago(120), why: [], printed: false },
]
const counters = [
  { id: '1', services: ['personal', 'corporate'], open: true, staff: 'lobby', since: ago(3600), current: { number: 'A004', service: 'personal', called_at: ago(200) } },
  { id: '2', services: ['personal'], open: true, staff: 'lobby', since: ago(3600), current: null },
  { id: '3', services: ['corporate', 'vip'], open: true, staff: 'lobby', since: ago(3600), current: null },
]
let alertSeq = 3
const alerts = [
  { id: '1', kind: 'paper_low', level: 'warn', message: '排队叫号打印机纸将用尽，请及时补充', ts: ago(3600), acked: false },
  { id: '2', kind: 'queue_timeout', level: 'warn', message: '对公业务 B002 已等候 13 分钟，超过目标 10 分钟', ts: ago(200), acked: false },
  { id: '3', kind: 'module_fault', level: 'critical', message: 'STM-01 凭条打印机故障，已停用该模块', ts: ago(5400), acked: true },
]
const arrivals = [
  { id: 'va-1', customer_id: 'C1001', name: '刘女士', level: 'diamond', tags: ['周四生日', '定期存款下周到期'], relationship_manager: { name: '孙经理', phone: '138****5678' }, confidence: 0.93, camera: 'entrance', ts: ago(900) },
]
const exceptions = { 'STM-01': [{ id: 'exc-17', code: 'CASH_JAM', message: '取款模块卡钞', ts: ago(7200) }] }
const devices = [
  { id: 'STM-01', kind: 'stm', model: 'STM-X9', online: true, state: 'in_service',
    modules: { card_reader: 'ok', cash_in: 'ok', cash_out: 'warn', receipt_printer: 'fault', card_dispenser: 'ok', ukey_dispenser: 'disabled', id_reader: 'ok', camera: 'ok', pin_pad: 'ok', doc_scanner: 'ok' },
    consumables: { debit_card: 120, ukey: 8, cheque_book: 10, deposit_cert: 48, receipt_paper_pct: 62 },
    cash: { cycle_id: '2026-11-22-1', cassettes: [{ id: 'C1', denom: 100, count: 1800 }, { id: 'C2', denom: 50, count: 400 }], deposited: 52300, dispensed: 181000 } },
  { id: 'STM-02', kind: 'stm', model: 'STM-X9', online: true, state: 'signed_out',
    modules: { card_reader: 'ok', cash_in: 'ok', cash_out: 'ok', receipt_printer: 'ok', id_reader: 'ok', camera: 'ok', pin_pad: 'ok' },
    consumables: { debit_card: 35, ukey: 22, receipt_paper_pct: 12 },
    cash: { cassettes: [{ id: 'C1', denom: 100, count: 2400 }, { id: 'C2', denom: 100, count: 2000 }], deposited: 0, dispensed: 0 } },
  { id: 'PRN-01', kind: 'printer', online: true, state: 'paper_low', modules: {}, consumables: {} },
  { id: 'IDR-01', kind: 'id_reader', online: false, state: 'offline', modules: {}, consumables: {} },
]
const tasks = [
  { id: 'ar-101', device_id: 'STM-02', request_id: 'STM-02-r-55', txn_type: 'withdrawal', state: 'pending', ts: ago(75),
    customer: { name: '张*', id_number_masked: '3201**********1234' },
    elements: { amount: 50000, account_masked: '6222 **** **** 8899', currency: 'CNY', purpose: '购房首付' }, reason: 'amount_over_limit' },
]
const orders = [
  { id: 'ORD-1001', title: '企业开户', status: 'in_progress', customer_name: '南京某某科技有限公司', ticket: 'B001', appointment_at: ago(1800),
    steps: [
      { key: 'approve', name: 'approve', state: 'done', started_at: ago(86400), finished_at: ago(80000), sla_s: 86400 },
      { key: 'verify', name: 'verify', state: 'done', started_at: ago(1500), finished_at: ago(1200), sla_s: 600 },
      { key: 'documents', name: 'documents', state: 'active', started_at: ago(700), sla_s: 900 },
      { key: 'deliver', name: 'deliver', state: 'pending', sla_s: 600 },
    ], fields: { name: '南京某某科技有限公司', credit_code: '91310110666007217T' } },
  { id: 'ORD-1002', title: '大额存单预约', status: 'arrived', customer_name: '周先生', ticket: 'A005', appointment_at: ago(-600),
    steps: [
      { key: 'checkin', name: 'checkin', state: 'done', started_at: ago(400), finished_at: ago(390), sla_s: 300 },
      { key: 'execute', name: 'execute', state: 'pending', sla_s: 1200 },
    ] },
]
// A small PNG thumbnail (grey screen, blue title bar) standing in for an STM screen.
const PNG = makePng(96, 64).toString('base64')
function makePng(w, h) {
  const raw = Buffer.alloc((w * 3 + 1) * h)
  for (let y = 0; y < h; y++) {
    raw[y * (w * 3 + 1)] = 0
    for (let x = 0; x < w; x++) {
      const o = y * (w * 3 + 1) + 1 + x * 3
      const bar = y < 12
      const button = y > 40 && y < 54 && x > 30 && x < 66
      const [r, g, b] = bar ? [31, 78, 150] : button ? [7, 163, 90] : [236, 239, 244]
      raw[o] = r; raw[o + 1] = g; raw[o + 2] = b
    }
  }
  const crcTable = Array.from({ length: 256 }, (_, n) => { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; return c >>> 0 })
  const crc = (buf) => { let c = 0xffffffff; for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8); return (c ^ 0xffffffff) >>> 0 }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length)
    const td = Buffer.concat([Buffer.from(type), data])
    const c = Buffer.alloc(4); c.writeUInt32BE(crc(td))
    return Buffer.concat([len, td, c])
  }
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4); ihdr[8] = 8; ihdr[9] = 2
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))])
}

// ---------------- events ----------------
let seq = 0
const backlog = []
const clients = new Set()
function emit(kind, data) {
  const env = { v: 1, seq: ++seq, id: randomUUID(), ts: now(), branch: 'NJ0101', kind, data }
  backlog.push(env)
  if (backlog.length > 500) backlog.shift()
  for (const res of clients) res.write(`id: ${env.seq}\nevent: ${kind}\ndata: ${JSON.stringify(env)}\n\n`)
  return env
}
function raise(kind, level, message) {
  const a = { id: String(++alertSeq), kind, level, message, ts: now(), acked: false }
  alerts.push(a)
  emit('alert.raised', a)
}

// ---------------- plumbing ----------------
function send(res, status, body, headers = {}) {
  const text = body === undefined ? '' : JSON.stringify(body)
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', ...headers })
  res.end(text)
}
const fail = (res, status, code, message, extra = {}) => send(res, status, { error: { code, message, ...extra } })
function readBody(req, limit = 11 * 1024 * 1024) {
  return new Promise((resolve, reject) => {
    const chunks = []
    let size = 0
    req.on('data', (c) => {
      size += c.length
      if (size > limit) reject(Object.assign(new Error('too large'), { status: 413 }))
      else chunks.push(c)
    })
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}
async function json(req) {
  const b = await readBody(req)
  if (!b.length) return {}
  return JSON.parse(b.toString('utf8'))
}
function sessionOf(req) {
  const m = /(?:^|;\s*)branchd_session=([^;]+)/.exec(req.headers.cookie || '')
  return m ? sessions.get(m[1]) : null
}
const ROLE_ROUTES = [
  [/^\/api\/v1\/(tickets|counters|queue)/, ['lobby_manager', 'supervisor', 'branch_manager']],
  [/^\/api\/v1\/vip/, ['lobby_manager', 'branch_manager']],
  [/^\/api\/v1\/tasks/, ['supervisor']],
  [/^\/api\/v1\/devices\/[^/]+\/(sign-in|sign-out|commands|exceptions\/[^/]+\/resolve)/, ['device_admin']],
  [/^\/api\/v1\/devices/, ['device_admin', 'branch_manager']],
  [/^\/api\/v1\/(ocr|orders)/, ['lobby_manager', 'branch_manager']],
  [/^\/api\/v1\/stats/, ['branch_manager']],
]
function queueView() {
  const t = Date.now()
  return {
    waiting: waiting.map((w, i) => ({ ...w, position: i + 1, waited_s: Math.floor((t - new Date(w.issued).getTime()) / 1000) })),
    counters,
    services: services.map((s) => ({ ...s, waiting: waiting.filter((w) => w.service === s.code).length })),
  }
}
function callable(counter) {
  return waiting.findIndex((w) => counter.services.includes(w.service))
}

// ---------------- routes ----------------
async function api(req, res, url) {
  const path = url.pathname
  const method = req.method
  if (path === '/api/v1/auth/login' && method === 'POST') {
    const { username, password } = await json(req)
    const u = USERS[username]
    if (!u || u.password !== password) return fail(res, 401, 'bad_credentials', '用户名或密码错误')
    const sid = randomUUID()
    sessions.set(sid, { username, role: u.role, display_name: u.display_name })
    return send(res, 200, sessions.get(sid), { 'Set-Cookie': `branchd_session=${sid}; HttpOnly; SameSite=Strict; Path=/` })
  }
  const s = sessionOf(req)
  if (path === '/api/v1/auth/logout' && method === 'POST') {
    const m = /branchd_session=([^;]+)/.exec(req.headers.cookie || '')
    if (m) sessions.delete(m[1])
    return send(res, 200, { ok: true }, { 'Set-Cookie': 'branchd_session=; Max-Age=0; Path=/' })
  }
  if (!s) return fail(res, 401, 'unauthenticated', '请先登录')
  if (path === '/api/v1/auth/me') return send(res, 200, s)
  for (const [re, roles] of ROLE_ROUTES) {
    if (re.test(path) && !roles.includes(s.role)) return fail(res, 403, 'forbidden', '当前角色无权访问')
  }

  if (path === '/api/v1/events') {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' })
    res.write('retry: 2000\n\n')
    const last = Number(req.headers['last-event-id'] ?? url.searchParams.get('last_event_id') ?? NaN)
    if (Number.isFinite(last)) for (const e of backlog) if (e.seq > last) res.write(`id: ${e.seq}\nevent: ${e.kind}\ndata: ${JSON.stringify(e)}\n\n`)
    clients.add(res)
    const ping = setInterval(() => res.write(': ping\n\n'), 15000)
    req.on('close', () => {
      clearInterval(ping)
      clients.delete(res)
    })
    return
  }
  if (path === '/api/v1/queue') return send(res, 200, queueView())
  if (path === '/api/v1/tickets' && method === 'POST') {
    const { service } = await json(req)
    const svc = services.find((x) => x.code === service)
    if (!svc) return fail(res, 400, 'unknown_service', `没有业务类型 ${service}`)
    const number = svc.prefix + String(++seqs[service]).padStart(3, '0')
    const t = { number, service, priority: 0, issued: now(), why: [] }
    waiting.push(t)
    const position = waiting.filter((w) => w.service === service).length
    emit('ticket.issued', { number, service, position })
    return send(res, 201, { number, service, position, estimated_wait_s: position * 240, printed: true })
  }
  let m
  if ((m = /^\/api\/v1\/counters\/([^/]+)\/call-next$/.exec(path)) && method === 'POST') {
    const c = counters.find((x) => x.id === decodeURIComponent(m[1]))
    if (!c) return fail(res, 404, 'no_such_counter', '没有这个窗口')
    if (!c.open) return fail(res, 409, 'counter_closed', `${c.id}号窗口未开放`)
    const i = callable(c)
    if (i < 0) return fail(res, 404, 'queue_empty', '没有等候的客户')
    const [t] = waiting.splice(i, 1)
    c.current = { number: t.number, service: t.service, called_at: now() }
    emit('ticket.called', { number: t.number, counter: c.id })
    return send(res, 200, { ...t, counter: c.id, called_at: c.current.called_at })
  }
  if ((m = /^\/api\/v1\/counters\/([^/]+)\/(open|close)$/.exec(path)) && method === 'POST') {
    const c = counters.find((x) => x.id === decodeURIComponent(m[1]))
    if (!c) return fail(res, 404, 'unknown_counter', '没有这个窗口')
    const body = await json(req)
    if (m[2] === 'open') {
      const staff = (body && body.staff) || 'lobby'
      if (c.open && c.staff !== staff) return fail(res, 409, 'counter_busy', `${c.id}号窗口已由${c.staff}值守`, { staff: c.staff })
      const changed = !c.open
      if (changed) Object.assign(c, { open: true, staff, since: now() })
      if (changed) emit('counter.opened', { counter: c.id, staff })
      return send(res, 200, { counter: c.id, open: true, staff: c.staff, since: c.since, changed })
    }
    if (c.current) return fail(res, 409, 'counter_has_ticket', `${c.id}号窗口还有 ${c.current.number}`, { number: c.current.number })
    const changed = c.open
    const staff = c.staff
    if (changed) Object.assign(c, { open: false, staff: null, since: null })
    if (changed) emit('counter.closed', { counter: c.id, staff })
    return send(res, 200, { counter: c.id, open: false, staff, changed })
  }
  if ((m = /^\/api\/v1\/tickets\/([^/]+)\/(recall|skip|serve-done|transfer|move)$/.exec(path)) && method === 'POST') {
    const number = decodeURIComponent(m[1])
    const action = m[2]
    const body = await json(req)
    const c = counters.find((x) => x.current && x.current.number === number)
    const wi = waiting.findIndex((w) => w.number === number)
    if (!c && wi < 0) return fail(res, 404, 'no_such_ticket', `没有号票 ${number}`)
    if (action === 'move') {
      if (wi < 0) return fail(res, 409, 'not_waiting', `${number} 不在队列中`)
      const pos = Number(body.position)
      if (!Number.isInteger(pos) || pos < 1) return fail(res, 400, 'bad_position', '位置必须是正整数')
      const [t] = waiting.splice(wi, 1)
      t.why = [...(t.why || []), { code: 'moved', text: body.reason ? `人工调整：${body.reason}` : '人工调整' }]
      waiting.splice(Math.min(pos - 1, waiting.length), 0, t)
    } else if (action === 'transfer') {
      if (body.service && !services.some((s) => s.code === body.service)) return fail(res, 400, 'unknown_service', '没有这个业务')
      const t = wi >= 0 ? waiting.splice(wi, 1)[0] : { number, service: c.current.service, issued: now(), why: [] }
      if (c) c.current = null
      if (body.service) t.service = body.service
      t.why = [{ code: 'transferred', text: null }]
      waiting.unshift(t)
    } else if (action === 'serve-done' || action === 'skip') {
      if (c) c.current = null
      else waiting.splice(wi, 1)
    }
    emit({ recall: 'ticket.recalled', skip: 'ticket.no_show', 'serve-done': 'ticket.served', transfer: 'ticket.transferred', move: 'ticket.moved' }[action], { number, ...body })
    return send(res, 200, { number, ok: true })
  }
  if (path === '/api/v1/alerts') return send(res, 200, alerts)
  if ((m = /^\/api\/v1\/alerts\/([^/]+)\/ack$/.exec(path)) && method === 'POST') {
    const a = alerts.find((x) => x.id === decodeURIComponent(m[1]))
    if (!a) return fail(res, 404, 'no_such_alert', '没有这条告警')
    a.acked = true
    emit('alert.acked', { id: a.id, by: s.username })
    return send(res, 200, a)
  }
  if (path === '/api/v1/vip/arrivals') return send(res, 200, arrivals)
  if (path === '/api/v1/devices') {
    return send(res, 200, devices.map((d) => ({ ...d, open_exceptions: (exceptions[d.id] || []).length })))
  }
  if ((m = /^\/api\/v1\/devices\/([^/]+)\/(sign-in|sign-out|commands|exceptions)$/.exec(path))) {
    const d = devices.find((x) => x.id === decodeURIComponent(m[1]))
    if (!d) return fail(res, 404, 'no_such_device', '没有这台设备')
    if (m[2] === 'exceptions') return send(res, 200, exceptions[d.id] || [])
    if (!d.online) return fail(res, 503, 'device_offline', `${d.id} 离线`)
    if (m[2] === 'sign-in') {
      d.state = 'in_service'
      emit('device.signed_in', { device_id: d.id })
      return send(res, 200, { cmd_id: randomUUID(), ok: true, error: null, data: null })
    }
    if (m[2] === 'sign-out') {
      const open = exceptions[d.id] || []
      if (open.length) return fail(res, 409, 'open_exceptions', `${d.id} 有 ${open.length} 个未处理异常，不能签退`, { exceptions: open })
      d.state = 'signed_out'
      emit('device.signed_out', { device_id: d.id })
      return send(res, 200, { cmd_id: randomUUID(), ok: true, error: null, data: null })
    }
    const { op, args = {} } = await json(req)
    const known = ['get_status', 'pause', 'resume', 'restart', 'shutdown', 'screenshot', 'module_enable', 'module_disable']
    if (!known.includes(op)) return send(res, 200, { cmd_id: randomUUID(), ok: false, error: 'unknown op', data: null })
    if (op === 'pause') d.state = 'paused'
    if (op === 'resume') d.state = 'in_service'
    if (op === 'module_disable' && args.module) d.modules[args.module] = 'disabled'
    if (op === 'module_enable' && args.module) d.modules[args.module] = 'ok'
    emit('device.command', { device_id: d.id, op, by: s.username })
    return send(res, 200, { cmd_id: randomUUID(), ok: true, error: null, data: op === 'screenshot' ? { png_base64: PNG } : null })
  }
  if ((m = /^\/api\/v1\/devices\/([^/]+)\/exceptions\/([^/]+)\/resolve$/.exec(path)) && method === 'POST') {
    const id = decodeURIComponent(m[1])
    const { note } = await json(req)
    if (!note || !String(note).trim()) return fail(res, 400, 'note_required', '请填写处理说明')
    const list = exceptions[id] || []
    const i = list.findIndex((x) => x.id === decodeURIComponent(m[2]))
    if (i < 0) return fail(res, 404, 'no_such_exception', '没有这个异常')
    list.splice(i, 1)
    emit('device.exception_resolved', { device_id: id, exc_id: m[2], note })
    return send(res, 200, { ok: true })
  }
  if (path === '/api/v1/tasks') return send(res, 200, tasks)
  if ((m = /^\/api\/v1\/tasks\/([^/]+)\/decide$/.exec(path)) && method === 'POST') {
    const t = tasks.find((x) => x.id === decodeURIComponent(m[1]))
    if (!t) return fail(res, 404, 'no_such_task', '没有这个授权任务')
    if (t.state !== 'pending' && t.state !== 'redo') return fail(res, 409, 'already_decided', '该任务已处理')
    const body = await json(req)
    if (!['approve', 'reject', 'redo'].includes(body.decision)) return fail(res, 400, 'bad_decision', 'decision 无效')
    if (body.decision === 'redo' && !(Array.isArray(body.redo) && body.redo.length)) return fail(res, 400, 'redo_steps_required', '请选择重做步骤')
    t.state = body.decision === 'approve' ? 'approved' : body.decision === 'reject' ? 'rejected' : 'redo'
    emit('auth.decided', { id: t.id, decision: body.decision, by: s.username })
    return send(res, 200, t)
  }
  if (path === '/api/v1/ocr' && method === 'POST') {
    let body
    try {
      body = await readBody(req, 10 * 1024 * 1024)
    } catch (e) {
      return fail(res, e.status || 400, 'too_large', '图片超过 10 MB')
    }
    if (!body.length) return fail(res, 400, 'empty_body', '没有收到图片')
    const kind = url.searchParams.get('kind') === 'licence' ? 'licence' : 'id_card'
    emit('ocr.completed', { kind, validated: ['id_number'] })
    if (kind === 'licence') {
      return send(res, 200, { kind, fields: {
        name: { value: '南京某某科技有限公司', confidence: 0.97 }, credit_code: { value: '91310110666007217T', confidence: 0.98, valid: true },
        type: { value: '有限责任公司', confidence: 0.95 }, legal_person: { value: '周某', confidence: 0.96 },
        registered_capital: { value: '壹佰万元整', confidence: 0.9 }, established: { value: '2015-03-18', confidence: 0.93, valid: true },
        term: { value: '长期', confidence: 0.92 }, address: { value: '南京市玄武区中山路 1 号', confidence: 0.88 },
      }, lines: [], timing_ms: { decode: 3, detect: 40, recognize: 70, total: 113 } })
    }
    return send(res, 200, { kind, fields: {
      name: { value: '张三', confidence: 0.98 }, gender: { value: '男', confidence: 0.99 }, nation: { value: '汉', confidence: 0.97 },
      birth_date: { value: '1978-12-16', confidence: 0.96, valid: true }, address: { value: '江苏省高邮市某某镇某某村', confidence: 0.72 },
      id_number: { value: '321083197812162119', confidence: 0.99, valid: true },
    }, chip: { name: '张三', gender: '男', id_number: '321083197812162119', address: '江苏省高邮市某某镇某某村 12 号' },
    mismatches: [{ field: 'address', ocr: '江苏省高邮市某某镇某某村', chip: '江苏省高邮市某某镇某某村 12 号' }],
    lines: [], timing_ms: { decode: 3.1, detect: 41, recognize: 60.2, total: 110.4 } })
  }
  if (path === '/api/v1/orders') return send(res, 200, orders.map(({ fields: _f, ...o }) => o))
  if ((m = /^\/api\/v1\/orders\/([^/]+)$/.exec(path))) {
    const o = orders.find((x) => x.id === decodeURIComponent(m[1]))
    return o ? send(res, 200, o) : fail(res, 404, 'no_such_order', '没有这个订单')
  }
  if (path === '/api/v1/stats') return send(res, 200, statsToday())
  if (path === '/api/v1/stats/period') return send(res, 200, statsPeriod(Number(url.searchParams.get('days')) || 30, url.searchParams.get('by') || 'day'))
  if (path === '/api/v1/stats/forecast') return send(res, 200, statsForecast(Number(url.searchParams.get('horizon')) || 7))
  if (path === '/api/v1/stats/staffing') return send(res, 200, statsStaffing(Number(url.searchParams.get('days')) || 7))
  // test hooks
  if (path === '/api/v1/_mock/vip' && method === 'POST') {
    const a = { id: `va-${Date.now()}`, customer_id: 'C2002', name: '吴先生', level: 'platinum', tags: ['理财产品本周到期'], relationship_manager: { name: '钱经理', phone: '139****1234' }, confidence: 0.9, camera: 'entrance', ts: now() }
    arrivals.unshift(a)
    emit('vip.arrived', a)
    return send(res, 200, a)
  }
  if (path === '/api/v1/_mock/auth' && method === 'POST') {
    const t = { id: `ar-${Date.now()}`, device_id: 'STM-01', txn_type: 'transfer', state: 'pending', ts: now(), customer: { name: '李*', id_number_masked: '1501**********3035' }, elements: { amount: 200000, payee: '王*', payee_account: '6217 **** **** 1024' }, reason: 'amount_over_limit' }
    tasks.unshift(t)
    emit('auth.requested', t)
    return send(res, 200, t)
  }
  if (path === '/api/v1/_mock/alert' && method === 'POST') {
    raise('queue_timeout', 'warn', '个人业务 A006 等候已超过 15 分钟')
    return send(res, 200, { ok: true })
  }
  return fail(res, 404, 'not_found', `没有这个接口：${method} ${path}`)
}

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.png': 'image/png', '.woff2': 'font/woff2', '.json': 'application/json' }
function serveStatic(res, pathname) {
  let p = normalize(join(distDir, decodeURIComponent(pathname)))
  if (!p.startsWith(distDir) || !existsSync(p) || statSync(p).isDirectory()) p = join(distDir, 'index.html')
  if (!existsSync(p)) {
    res.writeHead(503, { 'Content-Type': 'text/plain' })
    return res.end('dist/ is not built: run npm run build')
  }
  res.writeHead(200, { 'Content-Type': TYPES[extname(p)] || 'application/octet-stream' })
  res.end(readFileSync(p))
}

const server = createServer(async (req, res) => {
  const url = new URL(req.url, `http://${req.headers.host || 'localhost'}`)
  try {
    if (url.pathname === '/healthz') return send(res, 200, { status: 'ok' })
    if (url.pathname.startsWith('/api/')) return await api(req, res, url)
    return serveStatic(res, url.pathname)
  } catch (e) {
    if (!res.headersSent) fail(res, 500, 'internal', e.message)
  }
})
server.listen(port, '127.0.0.1', () => console.log(`mock branchd on http://127.0.0.1:${port} (users: lobby/lobby123 admin/admin123 super/super123 boss/boss123)`))
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { for (const c of clients) c.end(); server.close(() => process.exit(0)) })
