import { describe, expect, it, vi } from 'vitest'
import { TOKEN_KEY, idleTimer, takeToken, waitMinutes, withSession } from '../src/utils/kiosk.js'
import { decide, routes } from '../src/router/index.js'

function memory() {
  const m = new Map()
  return { getItem: (k) => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, String(v)), m }
}

describe('kiosk', () => {
  it('keeps the device token given once in the address, and uses it from then on', () => {
    const s = memory()
    expect(takeToken({}, s)).toBe(null)
    expect(takeToken({ token: ' abc ' }, s)).toBe('abc')
    expect(s.m.get(TOKEN_KEY)).toBe('abc')
    expect(takeToken({}, s)).toBe('abc')
    // A new token replaces the old one.
    expect(takeToken({ token: 'def' }, s)).toBe('def')
    expect(takeToken({}, s)).toBe('def')
  })

  it.each([
    [0, 0], [-5, 0], [null, 0], [1, 1], [60, 1], [61, 2], [900, 15],
  ])('an estimated wait of %s s reads %s min', (s, m) => expect(waitMinutes(s)).toBe(m))

  it('goes back to the start only after the idle time without a touch', () => {
    vi.useFakeTimers()
    const onIdle = vi.fn()
    const idle = idleTimer(1000, onIdle)
    idle.touch()
    vi.advanceTimersByTime(900)
    idle.touch()
    vi.advanceTimersByTime(900)
    expect(onIdle).not.toHaveBeenCalled()
    vi.advanceTimersByTime(100)
    expect(onIdle).toHaveBeenCalledTimes(1)
    idle.touch()
    idle.stop()
    vi.advanceTimersByTime(5000)
    expect(onIdle).toHaveBeenCalledTimes(1)
    vi.useRealTimers()
  })

  it('signs in with its token when its session has ended, and only then', async () => {
    const signIn = vi.fn(async () => {})
    let session = false
    const call = vi.fn(async () => {
      if (!session) throw Object.assign(new Error('no session'), { status: 401 })
      return 'ok'
    })
    signIn.mockImplementation(async () => { session = true })
    expect(await withSession(call, signIn)).toBe('ok')
    expect(signIn).toHaveBeenCalledTimes(1)
    expect(await withSession(call, signIn)).toBe('ok')
    expect(signIn).toHaveBeenCalledTimes(1)
    const refused = vi.fn(async () => { throw Object.assign(new Error('closed'), { status: 409 }) })
    await expect(withSession(refused, signIn)).rejects.toThrow('closed')
    expect(signIn).toHaveBeenCalledTimes(1)
  })

  it('opens without a staff session, and a staff member logged in stays on it', () => {
    const r = routes.find((x) => x.name === 'kiosk')
    const to = { name: 'kiosk', meta: r.meta, fullPath: '/kiosk' }
    expect(decide(to, { loggedIn: false })).toBe(true)
    expect(decide(to, { loggedIn: true, role: 'lobby_manager' })).toBe(true)
  })
})
