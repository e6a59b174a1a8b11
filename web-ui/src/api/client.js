// HTTP client for the branchd API: JSON in and out, cookie session, typed errors.

/** An error answered by the box (or the network), carrying what the user should read. */
export class ApiError extends Error {
  constructor(status, code, message, details = null) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.code = code
    this.details = details
  }
}

/**
 * Builds an ApiError from a response status and its parsed body. The box answers
 * `{"error":{"code","message",...}}`; anything else still gives a readable message.
 */
export function errorFromBody(status, body, statusText = '') {
  const err = body && typeof body === 'object' ? body.error : null
  if (err && typeof err === 'object') {
    const { code, message, ...rest } = err
    return new ApiError(status, code || `http_${status}`, message || statusText || `HTTP ${status}`, Object.keys(rest).length ? rest : null)
  }
  if (typeof body === 'string' && body.trim() && body.length < 300) {
    return new ApiError(status, `http_${status}`, body.trim())
  }
  return new ApiError(status, `http_${status}`, statusText ? `HTTP ${status} ${statusText}` : `HTTP ${status}`)
}

/**
 * Creates a client. `fetchImpl` is injectable for tests; `onUnauthorized` is called on
 * every 401 except from the login call itself, so the app can send the user to login.
 */
export function createClient({ baseUrl = '', fetchImpl, onUnauthorized = () => {}, timeoutMs = 20000 } = {}) {
  const doFetch = fetchImpl || ((...a) => globalThis.fetch(...a))

  async function request(method, path, { json, body, headers = {}, query, signal, noAuthRedirect = false } = {}) {
    let url = baseUrl + path
    if (query) {
      const qs = new URLSearchParams()
      for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') qs.set(k, String(v))
      const s = qs.toString()
      if (s) url += (url.includes('?') ? '&' : '?') + s
    }
    const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json', ...headers } }
    if (json !== undefined) {
      init.headers['Content-Type'] = 'application/json'
      init.body = JSON.stringify(json)
    } else if (body !== undefined) {
      init.body = body
    }
    const ctrl = typeof AbortController !== 'undefined' ? new AbortController() : null
    let timer = null
    if (ctrl) {
      init.signal = ctrl.signal
      if (signal) signal.addEventListener('abort', () => ctrl.abort(), { once: true })
      timer = setTimeout(() => ctrl.abort(new ApiError(0, 'timeout', 'timeout')), timeoutMs)
    }
    let res
    try {
      res = await doFetch(url, init)
    } catch (e) {
      if (e instanceof ApiError) throw e
      if (ctrl && ctrl.signal.aborted && ctrl.signal.reason instanceof ApiError) throw ctrl.signal.reason
      throw new ApiError(0, 'network', e && e.message ? e.message : 'network error')
    } finally {
      if (timer) clearTimeout(timer)
    }
    const text = await res.text()
    let data = null
    if (text) {
      const type = (res.headers && res.headers.get && res.headers.get('content-type')) || ''
      if (type.includes('json') || /^[[{]/.test(text.trim())) {
        try { data = JSON.parse(text) } catch { data = text }
      } else {
        data = text
      }
    }
    if (!res.ok) {
      const err = errorFromBody(res.status, data, res.statusText)
      if (res.status === 401 && !noAuthRedirect) onUnauthorized(err)
      throw err
    }
    return data
  }

  return {
    request,
    get: (path, opts) => request('GET', path, opts),
    post: (path, json, opts = {}) => request('POST', path, { ...opts, json: json === undefined ? {} : json }),
    postRaw: (path, body, contentType, opts = {}) =>
      request('POST', path, { ...opts, body, headers: { 'Content-Type': contentType || 'application/octet-stream' } }),
  }
}
