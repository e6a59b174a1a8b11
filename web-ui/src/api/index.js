// The branchd HTTP API as used by the PAD (see README for the assumed shapes).
import { createClient } from './client.js'

const enc = encodeURIComponent
let unauthorizedHandler = () => {}

/** Sets what happens on a 401 anywhere (the app sends the user to login). */
export function setUnauthorizedHandler(fn) {
  unauthorizedHandler = fn
}

export const client = createClient({ onUnauthorized: (e) => unauthorizedHandler(e) })

export function buildApi(c) {
  return {
    // session
    login: (username, password) => c.post('/api/v1/auth/login', { username, password }, { noAuthRedirect: true }),
    logout: () => c.post('/api/v1/auth/logout', {}, { noAuthRedirect: true }),
    me: () => c.get('/api/v1/auth/me', { noAuthRedirect: true }),
    // the self-service kiosk (its own session, from its device token; it handles its 401s)
    kioskSession: (token) => c.post('/api/v1/kiosk/session', { token }, { noAuthRedirect: true }),
    kioskServices: () => c.get('/api/v1/kiosk/services', { noAuthRedirect: true }),
    kioskIssue: (service) => c.post('/api/v1/kiosk/tickets', { service }, { noAuthRedirect: true }),
    // queue
    queue: () => c.get('/api/v1/queue'),
    issueTicket: (service, extra = {}) => c.post('/api/v1/tickets', { service, ...extra }),
    callNext: (counterId) => c.post(`/api/v1/counters/${enc(counterId)}/call-next`),
    openCounter: (counterId, staff) => c.post(`/api/v1/counters/${enc(counterId)}/open`, staff ? { staff } : {}),
    closeCounter: (counterId) => c.post(`/api/v1/counters/${enc(counterId)}/close`, {}),
    ticketAction: (number, action, body = {}) => c.post(`/api/v1/tickets/${enc(number)}/${action}`, body),
    // alerts
    alerts: () => c.get('/api/v1/alerts'),
    ackAlert: (id) => c.post(`/api/v1/alerts/${enc(id)}/ack`),
    // VIP arrivals
    vipArrivals: () => c.get('/api/v1/vip/arrivals'),
    // devices
    devices: () => c.get('/api/v1/devices'),
    deviceExceptions: (id) => c.get(`/api/v1/devices/${enc(id)}/exceptions`),
    signIn: (id) => c.post(`/api/v1/devices/${enc(id)}/sign-in`),
    signOut: (id) => c.post(`/api/v1/devices/${enc(id)}/sign-out`),
    command: (id, op, args = {}) => c.post(`/api/v1/devices/${enc(id)}/commands`, { op, args }),
    resolveException: (id, excId, note) =>
      c.post(`/api/v1/devices/${enc(id)}/exceptions/${enc(excId)}/resolve`, { note }),
    // authorisation tasks
    tasks: () => c.get('/api/v1/tasks'),
    decide: (id, body) => c.post(`/api/v1/tasks/${enc(id)}/decide`, body),
    // OCR
    // An ID card is checked against the chip of the card read lately on a lobby reader, if any.
    ocr: (kind, blob) =>
      c.postRaw('/api/v1/ocr', blob, blob.type || 'image/jpeg', {
        query: kind === 'licence' ? { kind } : { kind, reader: 'auto' },
      }),
    // the customer's page of their visit (public: the token is the key) and its link
    customerPage: (token) => c.get(`/api/v1/public/c/${enc(token)}`, { noAuthRedirect: true }),
    rateVisit: (token, score, tags) => c.post(`/api/v1/public/c/${enc(token)}/rating`, { score, tags }, { noAuthRedirect: true }),
    customerLink: (query) => c.get('/api/v1/customer-link', { query }),
    // orders
    orders: () => c.get('/api/v1/orders'),
    order: (id) => c.get(`/api/v1/orders/${enc(id)}`, { query: { view: 'staff' } }),
    orderAction: (id, action, body = {}) => c.post(`/api/v1/orders/${enc(id)}/${action}`, body),
    // OCR back-fill: the confirmed fields, each with its source (photo or chip)
    fillOrderCustomer: (id, fields, ocrId) =>
      c.post(`/api/v1/orders/${enc(id)}/customer`, ocrId ? { fields, ocr_id: ocrId } : { fields }),
    orderStep: (id, key, action) => c.post(`/api/v1/orders/${enc(id)}/steps/${enc(key)}/${action}`, {}),
    staffUsers: () => c.get('/api/v1/users/staff'),
    // statistics
    stats: () => c.get('/api/v1/stats'),
    statsPeriod: (query) => c.get('/api/v1/stats/period', { query }),
    statsForecast: (horizon) => c.get('/api/v1/stats/forecast', { query: { horizon } }),
    statsStaffing: (days) => c.get('/api/v1/stats/staffing', { query: { days } }),
    // the product shelf and the calculators
    products: (query = {}) => c.get('/api/v1/products', { query }),
    product: (code) => c.get(`/api/v1/products/${enc(code)}`),
    showOnStm: (code, device, ticket) =>
      c.post(`/api/v1/products/${enc(code)}/show`, ticket ? { device, ticket } : { device }),
    stms: () => c.get('/api/v1/shelf/stms'),
    calc: (kind, body) => c.post(`/api/v1/calc/${enc(kind)}`, body),
    // customers in the branch, leads, rights
    // a walk-in customer of today (no order) from an ID card's confirmed fields
    recordWalkIn: (fields, ocrId) => c.post('/api/v1/customers/walk-ins', ocrId ? { fields, ocr_id: ocrId } : { fields }),
    customersPresent: (query = {}) => c.get('/api/v1/customers/present', { query }),
    leads: (query = {}) => c.get('/api/v1/leads', { query }),
    leadFeedback: (id, outcome, note) =>
      c.post(`/api/v1/leads/${enc(id)}/feedback`, note ? { outcome, note } : { outcome }),
    rights: (query = {}) => c.get('/api/v1/rights', { query }),
    checkCoupon: (code, customerId) =>
      c.post('/api/v1/rights/check', customerId ? { code, customer_id: customerId } : { code }),
    redeemCoupon: (code, customerId) => c.post('/api/v1/rights/redeem', { code, customer_id: customerId }),
  }
}

export const api = buildApi(client)
