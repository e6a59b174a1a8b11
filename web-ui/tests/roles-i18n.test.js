import { readFileSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ROLES, canAct, canView, homeFor, screensFor } from '../src/roles.js'
import { decide, routes } from '../src/router/index.js'
import { DEFAULT_LOCALE, LOCALE_KEY, initialLocale, messages, saveLocale } from '../src/i18n.js'
import zh from '../src/locales/zh-CN.json'
import en from '../src/locales/en.json'

describe('roles', () => {
  it.each([
    ['lobby_manager', ['lobby', 'customers', 'vip', 'shelf', 'rights', 'ocr', 'orders']],
    ['supervisor', ['tasks', 'lobby']],
    ['device_admin', ['devices']],
    ['branch_manager', ['stats', 'lobby', 'customers', 'shelf', 'devices']],
    ['nobody', []],
  ])('%s sees %j', (role, screens) => expect(screensFor(role)).toEqual(screens))

  it.each([
    ['device_admin', 'devices', true, true],
    ['branch_manager', 'devices', true, false],
    ['branch_manager', 'lobby', true, true],
    ['supervisor', 'devices', false, false],
    ['supervisor', 'lobby', true, false],
    ['lobby_manager', 'tasks', false, false],
  ])('%s on %s: view %s, act %s', (role, screen, view, act) => {
    expect(canView(role, screen)).toBe(view)
    expect(canAct(role, screen)).toBe(act)
  })

  it('customers\' personal data is only on the screens of the roles that serve them', () => {
    for (const role of ['device_admin', 'supervisor']) {
      for (const screen of ['customers', 'vip', 'shelf', 'rights']) expect(canView(role, screen)).toBe(false)
    }
  })

  it('every screen of every role has a route', () => {
    const screens = new Set(routes.map((r) => r.meta && r.meta.screen).filter(Boolean))
    for (const role of ROLES) for (const s of screensFor(role)) expect(screens.has(s)).toBe(true)
  })
})

describe('router guard', () => {
  const route = (name) => {
    const r = routes.find((x) => x.name === name)
    return { name, meta: r.meta || {}, fullPath: `/${name}` }
  }
  it.each([
    ['anonymous to lobby', route('lobby'), { loggedIn: false }, { name: 'login', query: { redirect: '/lobby' } }],
    ['anonymous to login', route('login'), { loggedIn: false }, true],
    ['logged-in to login', route('login'), { loggedIn: true, role: 'supervisor' }, { name: 'tasks' }],
    ['supervisor to tasks', route('tasks'), { loggedIn: true, role: 'supervisor' }, true],
    ['supervisor to devices', route('devices'), { loggedIn: true, role: 'supervisor' }, { name: 'tasks' }],
    ['device admin to stats', route('stats'), { loggedIn: true, role: 'device_admin' }, { name: 'devices' }],
    ['branch manager to devices', route('devices'), { loggedIn: true, role: 'branch_manager' }, true],
    ['anonymous to the customer page', route('customer'), { loggedIn: false }, true],
    ['staff to the customer page', route('customer'), { loggedIn: true, role: 'lobby_manager' }, true],
    ['unknown path', { name: 'home', meta: {}, fullPath: '/nope' }, { loggedIn: true, role: 'lobby_manager' }, { name: 'lobby' }],
  ])('%s', (_n, to, session, want) => expect(decide(to, session)).toEqual(want))

  it('home of each role is its first screen', () => {
    expect(homeFor('branch_manager')).toBe('stats')
    expect(homeFor(undefined)).toBe('login')
  })
})

function keys(obj, prefix = '') {
  return Object.entries(obj).flatMap(([k, v]) => (v && typeof v === 'object' ? keys(v, `${prefix}${k}.`) : [`${prefix}${k}`]))
}
function sources(dir) {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n)
    return statSync(p).isDirectory() ? sources(p) : /\.(vue|js)$/.test(n) ? [p] : []
  })
}

describe('messages', () => {
  it('Chinese and English have the same keys', () => {
    expect(keys(en).sort()).toEqual(keys(zh).sort())
  })

  it('every literal key used in the code exists', () => {
    const all = new Set(keys(zh))
    const prefixes = new Set(keys(zh).flatMap((k) => k.split('.').slice(0, -1).map((_, i, a) => a.slice(0, i + 1).join('.') + '.')))
    const missing = []
    for (const file of sources(new URL('../src', import.meta.url).pathname)) {
      const text = readFileSync(file, 'utf8')
      for (const m of text.matchAll(/\bt\(\s*['`]([a-zA-Z0-9_.]+)(['`]|\$\{)/g)) {
        const key = m[1]
        const dynamic = m[2] === '${' || key.endsWith('.')
        if (dynamic ? !prefixes.has(key.endsWith('.') ? key : key + '.') : !all.has(key)) missing.push(`${file.split('/src/')[1]}: ${key}`)
      }
    }
    expect(missing).toEqual([])
  })

  it('has no empty message', () => {
    for (const [name, m] of Object.entries(messages)) {
      const empty = keys(m).filter((k) => k.split('.').reduce((o, p) => o[p], m) === '')
      expect(empty, name).toEqual([])
    }
  })
})

describe('language choice', () => {
  const store = (v) => {
    const data = new Map(v === undefined ? [] : [[LOCALE_KEY, v]])
    return { getItem: (k) => (data.has(k) ? data.get(k) : null), setItem: (k, val) => data.set(k, val), data }
  }
  it.each([
    [undefined, 'zh-CN'],
    ['en', 'en'],
    ['zh-CN', 'zh-CN'],
    ['fr', DEFAULT_LOCALE],
  ])('saved %s → %s', (saved, want) => expect(initialLocale(store(saved))).toBe(want))

  it('falls back to Chinese when storage throws', () => {
    expect(initialLocale({ getItem: () => { throw new Error('denied') } })).toBe('zh-CN')
  })

  it('saves known locales only', () => {
    const s = store()
    saveLocale('en', s)
    expect(s.data.get(LOCALE_KEY)).toBe('en')
    expect(() => saveLocale('de', s)).toThrow('unknown locale')
  })
})
