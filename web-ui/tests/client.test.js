import { describe, expect, it, vi } from 'vitest'
import { ApiError, createClient, errorFromBody } from '../src/api/client.js'
import { buildApi } from '../src/api/index.js'

function fakeFetch(status, body, { type = 'application/json' } = {}) {
  return vi.fn(async () => ({
    ok: status >= 200 && status < 300,
    status,
    statusText: status === 200 ? 'OK' : 'Err',
    headers: { get: () => type },
    text: async () => (typeof body === 'string' ? body : body === undefined ? '' : JSON.stringify(body)),
  }))
}

describe('errorFromBody', () => {
  it.each([
    [409, { error: { code: 'open_exceptions', message: 'STM-01 有未处理异常', exceptions: [{ id: 'e1' }] } }, 'open_exceptions', 'STM-01 有未处理异常', { exceptions: [{ id: 'e1' }] }],
    [404, { error: { code: 'queue_empty', message: 'no one waiting' } }, 'queue_empty', 'no one waiting', null],
    [500, 'upstream failed', 'http_500', 'upstream failed', null],
    [502, null, 'http_502', 'HTTP 502 Bad Gateway', null],
  ])('%s %j', (status, body, code, message, details) => {
    const e = errorFromBody(status, body, 'Bad Gateway')
    expect(e).toBeInstanceOf(ApiError)
    expect(e.status).toBe(status)
    expect(e.code).toBe(code)
    expect(e.message).toBe(message)
    expect(e.details).toEqual(details)
  })
})

describe('createClient', () => {
  it('sends JSON with the session cookie and parses the answer', async () => {
    const f = fakeFetch(201, { number: 'A001' })
    const c = createClient({ fetchImpl: f })
    const r = await c.post('/api/v1/tickets', { service: 'personal' })
    expect(r).toEqual({ number: 'A001' })
    const [url, init] = f.mock.calls[0]
    expect(url).toBe('/api/v1/tickets')
    expect(init.method).toBe('POST')
    expect(init.credentials).toBe('same-origin')
    expect(init.headers['Content-Type']).toBe('application/json')
    expect(JSON.parse(init.body)).toEqual({ service: 'personal' })
  })

  it('builds query strings and skips empty values', async () => {
    const f = fakeFetch(200, {})
    await createClient({ fetchImpl: f }).get('/api/v1/orders/7', { query: { view: 'staff', x: '', y: null } })
    expect(f.mock.calls[0][0]).toBe('/api/v1/orders/7?view=staff')
  })

  it('posts raw bodies with their content type', async () => {
    const f = fakeFetch(200, { kind: 'id_card', fields: {} })
    const api = buildApi(createClient({ fetchImpl: f }))
    const blob = new Blob([new Uint8Array([1, 2, 3])], { type: 'image/png' })
    await api.ocr('id-card', blob)
    const [url, init] = f.mock.calls[0]
    expect(url).toBe('/api/v1/ocr?kind=id-card&reader=auto')
    expect(init.headers['Content-Type']).toBe('image/png')
    expect(init.body).toBe(blob)
    await api.ocr('licence', blob)
    expect(f.mock.calls[1][0]).toBe('/api/v1/ocr?kind=licence')
  })

  it('throws the box\'s message as an ApiError', async () => {
    const c = createClient({ fetchImpl: fakeFetch(403, { error: { code: 'forbidden', message: '无权访问' } }) })
    await expect(c.get('/api/v1/stats')).rejects.toMatchObject({ status: 403, code: 'forbidden', message: '无权访问' })
  })

  it('reports a 401 to the app, except where told not to', async () => {
    const onUnauthorized = vi.fn()
    const c = createClient({ fetchImpl: fakeFetch(401, { error: { code: 'unauthenticated', message: 'login' } }), onUnauthorized })
    await expect(c.get('/api/v1/queue')).rejects.toMatchObject({ status: 401 })
    expect(onUnauthorized).toHaveBeenCalledTimes(1)
    await expect(c.get('/api/v1/auth/me', { noAuthRedirect: true })).rejects.toMatchObject({ status: 401 })
    expect(onUnauthorized).toHaveBeenCalledTimes(1)
  })

  it('login failures never trigger the 401 redirect', async () => {
    const onUnauthorized = vi.fn()
    const api = buildApi(createClient({ fetchImpl: fakeFetch(401, { error: { code: 'bad_credentials', message: 'wrong' } }), onUnauthorized }))
    await expect(api.login('a', 'b')).rejects.toMatchObject({ code: 'bad_credentials' })
    expect(onUnauthorized).not.toHaveBeenCalled()
  })

  it('turns a network failure into a readable error', async () => {
    const c = createClient({ fetchImpl: vi.fn(async () => { throw new TypeError('Failed to fetch') }) })
    await expect(c.get('/api/v1/queue')).rejects.toMatchObject({ status: 0, code: 'network' })
  })

  it('answers with text when the body is not JSON', async () => {
    const c = createClient({ fetchImpl: fakeFetch(200, 'plain', { type: 'text/plain' }) })
    expect(await c.get('/x')).toBe('plain')
  })

  it('encodes path parts', async () => {
    const f = fakeFetch(200, {})
    const api = buildApi(createClient({ fetchImpl: f }))
    await api.resolveException('STM 01', 'exc/1', 'done')
    expect(f.mock.calls[0][0]).toBe('/api/v1/devices/STM%2001/exceptions/exc%2F1/resolve')
    expect(JSON.parse(f.mock.calls[0][1].body)).toEqual({ note: 'done' })
  })
})
