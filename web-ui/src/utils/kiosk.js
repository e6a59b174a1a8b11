// The self-service kiosk's logic, apart from its screen: its device token, the wait in
// minutes, and the idle timer that takes the screen back to the start.

/** Where the kiosk keeps its device token (set once, from `#/kiosk?token=…`). */
export const TOKEN_KEY = 'branchd.kiosk.token'

/** Untouched this long, the kiosk goes back to its start screen in Chinese. */
export const IDLE_MS = 45000

/** A ticket stays on the screen this long unless the customer taps "done". */
export const TICKET_MS = 20000

/** The services are read again this often while the start screen shows. */
export const REFRESH_MS = 15000

/**
 * The kiosk's device token: one given in the address is saved (and the caller cleans the
 * address so it does not stay on the screen); otherwise the saved one, or null.
 */
export function takeToken(query, storage = globalThis.localStorage) {
  const given = query && typeof query.token === 'string' ? query.token.trim() : ''
  try {
    if (given) storage.setItem(TOKEN_KEY, given)
    return given || storage.getItem(TOKEN_KEY) || null
  } catch {
    return given || null
  }
}

/** Whole minutes of an estimated wait, rounded up (0 for none). */
export function waitMinutes(seconds) {
  const s = Number(seconds)
  return Number.isFinite(s) && s > 0 ? Math.ceil(s / 60) : 0
}

/**
 * Calls `onIdle` once after `ms` without `touch()`; `touch()` starts the wait again and
 * `stop()` ends it. Timers are injectable for tests.
 */
export function idleTimer(ms, onIdle, { setTimer = setTimeout, clearTimer = clearTimeout } = {}) {
  let handle = null
  const stop = () => {
    if (handle !== null) clearTimer(handle)
    handle = null
  }
  const touch = () => {
    stop()
    handle = setTimer(() => {
      handle = null
      onIdle()
    }, ms)
  }
  return { touch, stop }
}

/**
 * Runs `call` with the kiosk's session, signing in with the device token first when there is
 * no session yet or it has ended (a 401): the kiosk never needs a member of staff to log it in.
 */
export async function withSession(call, signIn) {
  try {
    return await call()
  } catch (e) {
    if (!e || e.status !== 401) throw e
    await signIn()
    return call()
  }
}
