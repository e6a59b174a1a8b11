// End-to-end walk through the PAD app in a real headless Chromium, as each role.
//
//   BRANCHD_URL=http://127.0.0.1:8080 \
//   BRANCHD_CREDENTIALS='lobby_manager=lobby:pw,supervisor=super:pw,device_admin=admin:pw,branch_manager=boss:pw' \
//   ARTIFACTS_DIR=./e2e-artifacts npm run e2e
//
// Credentials can also come one role at a time: BRANCHD_LOBBY_MANAGER_USER / _PASSWORD, ...
// CHROMIUM_PATH overrides /usr/bin/chromium. ID_CARD_IMAGE points at a photo to upload
// (a generated test image is used otherwise); ID_CARD_BACK_EXPIRED the back of an expired
// card, which must be flagged. E2E_ROLES limits the roles run. E2E_EXPECT_VIP
// names a VIP whose arrival card (with the ticket she took) must appear. DEMO_LOG and HQ_LOG
// are the demo's log and what head office received (`branchd hq watch --data`): a product
// shown on an STM must reach the simulator, lead answers and redeemed coupons head office.
// COUPON_VIDEO is a Y4M video of a coupon's QR code (COUPON_ID) played as the camera.
// ORDER_ID is an order head office booked (`branchd hq send`): approved, run and delivered on
// the PAD, its `order.completed` must reach head office.
// KIOSK_TOKEN is the demo kiosk's device token: the self-service kiosk is opened with it, with
// no staff login, issues tickets in both languages, and is refused every staff route.
// Prints one line per step and closes with "N passed, N failed"; exits 1 on any failure.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { tmpdir } from 'node:os'
import { deflateSync } from 'node:zlib'
import { foreignText } from './language.mjs'
import { ROLE_SCREENS } from '../src/roles.js'

const ROLES = ['lobby_manager', 'supervisor', 'device_admin', 'branch_manager']
// Every screen of each role's navigation, as the app itself has it.
const SCREENS = ROLE_SCREENS
const VIEWPORTS = [
  { width: 1024, height: 768 },
  { width: 768, height: 1024 },
]
const T = { short: 5000, action: 10000, nav: 20000, queueAlert: 120000 }

// ---------------- configuration ----------------
function fatal(msg) {
  console.error(`e2e: ${msg}`)
  console.log('0 passed, 1 failed')
  process.exit(1)
}

const base = (process.env.BRANCHD_URL || '').replace(/\/+$/, '')
if (!base) fatal('BRANCHD_URL is not set (e.g. http://127.0.0.1:8080, the address `branchd demo` prints)')
const artifacts = resolve(process.env.ARTIFACTS_DIR || 'e2e-artifacts')
mkdirSync(artifacts, { recursive: true })
const chromium = process.env.CHROMIUM_PATH || '/usr/bin/chromium'
if (!existsSync(chromium)) fatal(`no Chromium at ${chromium}: install Debian's chromium package or set CHROMIUM_PATH`)

function credentials() {
  const out = {}
  for (const part of (process.env.BRANCHD_CREDENTIALS || '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^([a-z_]+)=([^:]+):(.*)$/.exec(part)
    if (!m) fatal(`BRANCHD_CREDENTIALS entry "${part}" is not role=user:password`)
    out[m[1]] = { username: m[2], password: m[3] }
  }
  for (const role of ROLES) {
    const k = role.toUpperCase()
    const u = process.env[`BRANCHD_${k}_USER`]
    const p = process.env[`BRANCHD_${k}_PASSWORD`]
    if (u && p) out[role] = { username: u, password: p }
  }
  return out
}
const creds = credentials()
const wanted = (process.env.E2E_ROLES || ROLES.join(',')).split(',').map((s) => s.trim()).filter(Boolean)
const missing = wanted.filter((r) => !creds[r])
if (missing.length) fatal(`no demo credentials for ${missing.join(', ')}: set BRANCHD_CREDENTIALS or BRANCHD_<ROLE>_USER/_PASSWORD`)

let pw
try {
  pw = await import('playwright-core')
} catch (e) {
  fatal(`playwright-core is not installed (npm ci in web-ui/): ${e.message}`)
}

try {
  const res = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(5000) })
  if (!res.ok) fatal(`${base}/healthz answered ${res.status}: is branchd running there?`)
} catch (e) {
  fatal(`cannot reach ${base}/healthz (${e.cause ? e.cause.code || e.cause.message : e.message}): start \`branchd demo\` first`)
}

// ---------------- harness ----------------
const results = []
const consoleProblems = []

async function step(page, name, fn) {
  const started = Date.now()
  try {
    await fn()
    results.push({ name, ok: true })
    console.log(`ok   ${name} (${Date.now() - started} ms)`)
  } catch (e) {
    results.push({ name, ok: false, error: e.message })
    // every line of the reason (a list of wrong-language texts, say), the first one after the name
    const [first, ...rest] = e.message.split('\n')
    console.log(`FAIL ${name}: ${first}`)
    for (const line of rest.slice(0, 20)) console.log(`     ${line.trim()}`)
    if (page) {
      // A page whose script never yields (or that crashed) fails every later step alike: say so.
      const answers = await Promise.race([
        page.evaluate(() => true).catch(() => false),
        new Promise((resolve) => setTimeout(() => resolve(false), 3000)),
      ])
      if (!answers) console.log(`     the page does not answer (its script is busy or it crashed) at ${page.url()}`)
      const file = join(artifacts, `FAIL-${name.replace(/[^a-z0-9]+/gi, '_')}.png`)
      await page.screenshot({ path: file, fullPage: true }).catch(() => {})
      console.log(`     screenshot: ${file}`)
    }
  }
}

function expect(cond, message) {
  if (!cond) throw new Error(message)
}

async function visible(page, selector, what, timeout = T.action) {
  try {
    await page.locator(selector).first().waitFor({ state: 'visible', timeout })
  } catch {
    throw new Error(`${what} did not appear (${selector}) within ${timeout} ms`)
  }
}

async function login(page, role) {
  const { username, password } = creds[role]
  await page.goto(`${base}/#/login`, { waitUntil: 'domcontentloaded', timeout: T.nav })
  await visible(page, '[data-test=login-form]', 'the login form', T.nav)
  await page.fill('[data-test=username] input', username)
  await page.fill('[data-test=password] input', password)
  await page.click('[data-test=login-submit]')
  try {
    await page.waitForFunction(() => !location.hash.startsWith('#/login'), null, { timeout: T.action })
  } catch {
    const err = await page.locator('[data-test=login-error]').textContent().catch(() => null)
    throw new Error(`login as ${username} (${role}) failed${err ? `: "${err.trim()}"` : ''}`)
  }
  const home = SCREENS[role][0]
  await page.waitForFunction((h) => location.hash.startsWith(`#/${h}`), home, { timeout: T.short }).catch(() => {
    throw new Error(`after login ${role} should land on #/${home}`)
  })
}

async function logout(page) {
  await page.click('[data-test=user-menu]')
  await page.locator('.van-action-sheet__item:visible').first().click()
  await page.waitForFunction(() => location.hash.startsWith('#/login'), null, { timeout: T.action })
}

async function confirmDialog(page) {
  const btn = page.locator('.van-dialog:visible .van-dialog__confirm').last()
  await btn.waitFor({ state: 'visible', timeout: T.short })
  await btn.click()
}

/** Waits until a log file has a line matching `re` (colour codes stripped). */
async function inLog(file, re, what, timeout = 15000) {
  if (!file) throw new Error(`no log to look for ${what} in (DEMO_LOG / HQ_LOG not set)`)
  const deadline = Date.now() + timeout
  for (;;) {
    // eslint-disable-next-line no-control-regex -- the log's terminal colours
    const text = existsSync(file) ? readFileSync(file, 'utf8').replace(/\x1b\[[0-9;]*m/g, '') : ''
    const line = text.split('\n').find((l) => re.test(l))
    if (line) return line
    if (Date.now() > deadline) throw new Error(`${what} not in ${file} within ${timeout / 1000} s`)
    await new Promise((r) => setTimeout(r, 250))
  }
}

/** Clicks the visible action-sheet item with this text. */
async function pick(page, text) {
  const item = page.locator('.van-action-sheet__item:visible', { hasText: text }).first()
  await item.waitFor({ timeout: T.short }).catch(() => { throw new Error(`no choice "${text}" offered`) })
  await item.click()
}

async function shot(page, name) {
  for (const vp of VIEWPORTS) {
    await page.setViewportSize(vp)
    // from the top: the fixed header then sits where it belongs in a full-page picture
    await page.evaluate(() => window.scrollTo(0, 0))
    await page.waitForTimeout(300)
    await page.screenshot({ path: join(artifacts, `${name}-${vp.width}x${vp.height}.png`), fullPage: true })
  }
  await page.setViewportSize(VIEWPORTS[0])
}

async function closePopup(page) {
  await page.locator('.van-popup__close-icon:visible').first().click()
  await page.waitForTimeout(300)
}

async function settle(page) {
  await page.waitForLoadState('networkidle', { timeout: 3000 }).catch(() => {})
  await page.waitForTimeout(400)
}

/**
 * The text a person reads on the screen now: visible text nodes, placeholders, titles and
 * labels. Data shown as it came from head office or the customer (names, product names,
 * addresses) is marked `translate="no"` and left out: it is in the language it was written in.
 */
async function readableText(page) {
  return page.evaluate(() => {
    const out = []
    // Text in another language on purpose says so with `lang` (the language switch's "EN").
    const otherLanguage = (el) => { const l = el.closest('[lang]'); return l && l.lang !== document.documentElement.lang }
    const shown = (el) => el && !el.closest('[translate="no"], script, style, noscript, [aria-hidden="true"]') &&
      !otherLanguage(el) && el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden'
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT)
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const text = n.textContent.replace(/\s+/g, ' ').trim()
      if (text && shown(n.parentElement)) out.push(text)
    }
    for (const el of document.querySelectorAll('[placeholder], [title], [aria-label]')) {
      if (!shown(el)) continue
      for (const a of ['placeholder', 'title', 'aria-label']) {
        const v = (el.getAttribute(a) || '').trim()
        if (v) out.push(v)
      }
    }
    return out
  })
}

/** Every screen of the role in each language: nothing from the other language, no raw code. */
async function languageScan(page, role) {
  const problems = []
  for (const locale of ['zh-CN', 'en']) {
    await page.evaluate((l) => localStorage.setItem('branchd.locale', l), locale)
    for (const screen of SCREENS[role]) {
      await page.goto(`${base}/#/${screen}`, { waitUntil: 'domcontentloaded' })
      await page.reload({ waitUntil: 'domcontentloaded' })
      await page.waitForFunction((l) => document.documentElement.lang === l, locale, { timeout: T.action })
      await settle(page)
      for (const p of foreignText(await readableText(page), locale)) problems.push(`${locale} ${screen}: ${p}`)
    }
  }
  await page.evaluate(() => localStorage.setItem('branchd.locale', 'zh-CN'))
  await page.reload({ waitUntil: 'domcontentloaded' })
  expect(problems.length === 0, `${problems.length} text(s) in the wrong language:\n  ${problems.join('\n  ')}`)
}

async function screenshots(page, role) {
  // The navigation and the box's route table agree: no screen the role sees reads
  // something the role may not (a 403 would leave the screen empty or in error).
  const refused = []
  const onResponse = (r) => { if (r.status() === 403) refused.push(`${page.url().split('#')[1]}: ${r.request().method()} ${new URL(r.url()).pathname}`) }
  page.on('response', onResponse)
  for (const screen of SCREENS[role]) {
    for (const vp of VIEWPORTS) {
      await page.setViewportSize(vp)
      await page.goto(`${base}/#/${screen}`, { waitUntil: 'domcontentloaded' })
      await settle(page)
      await page.evaluate(() => window.scrollTo(0, 0))
      const file = join(artifacts, `${role}-${screen}-${vp.width}x${vp.height}.png`)
      await page.screenshot({ path: file, fullPage: true })
    }
  }
  await page.setViewportSize(VIEWPORTS[0])
  page.off('response', onResponse)
  expect(refused.length === 0, `screens of ${role} were refused by the box:\n  ${[...new Set(refused)].join('\n  ')}`)
}

/** A generated "ID card" image (a real card photo can be given with ID_CARD_IMAGE). */
function testImage() {
  if (process.env.ID_CARD_IMAGE) {
    if (!existsSync(process.env.ID_CARD_IMAGE)) throw new Error(`ID_CARD_IMAGE ${process.env.ID_CARD_IMAGE} does not exist`)
    return process.env.ID_CARD_IMAGE
  }
  const w = 428, h = 270
  const raw = Buffer.alloc((w * 3 + 1) * h, 0xf0)
  for (let y = 0; y < h; y++) raw[y * (w * 3 + 1)] = 0
  const crcT = Array.from({ length: 256 }, (_, n) => { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; return c >>> 0 })
  const crc = (b) => { let c = 0xffffffff; for (const x of b) c = crcT[(c ^ x) & 0xff] ^ (c >>> 8); return (c ^ 0xffffffff) >>> 0 }
  const chunk = (type, data) => {
    const l = Buffer.alloc(4); l.writeUInt32BE(data.length)
    const td = Buffer.concat([Buffer.from(type), data]); const c = Buffer.alloc(4); c.writeUInt32BE(crc(td))
    return Buffer.concat([l, td, c])
  }
  const ihdr = Buffer.alloc(13); ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4); ihdr[8] = 8; ihdr[9] = 2
  const png = Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))])
  const file = join(tmpdir(), 'branchd-e2e-id.png')
  writeFileSync(file, png)
  return file
}

// ---------------- role flows ----------------
const flows = {
  async lobby_manager(page) {
    let issued = null
    await step(page, 'lobby: queue, figures and counters show', async () => {
      await visible(page, '[data-test=figures]', 'the waiting figures')
      await visible(page, '[data-test^=counter-]', 'at least one counter')
    })
    await step(page, 'lobby: issue a ticket', async () => {
      await page.click('[data-test=issue-ticket]')
      await visible(page, '.van-action-sheet__item:visible', 'the service choice')
      await page.locator('.van-action-sheet__item:visible').first().click()
      await visible(page, '[data-test=issued]', 'the issued ticket')
      issued = (await page.locator('[data-test=issued] .issued-number').textContent()).trim()
      expect(/^[A-Z]+\d+$/.test(issued), `issued ticket number looks wrong: "${issued}"`)
      await confirmDialog(page)
      await page.locator(`[data-test=queue] [data-number="${issued}"]`).waitFor({ timeout: T.action })
        .catch(() => { throw new Error(`ticket ${issued} was issued but is not in the queue list`) })
    })
    await step(page, 'lobby: call the issued ticket', async () => {
      expect(issued, 'no ticket was issued in the previous step')
      const counters = page.locator('[data-test^=counter-]')
      const n = await counters.count()
      expect(n > 0, 'no counters on the lobby screen')
      const queueLen = await page.locator('[data-test=queue] li').count()
      for (let i = 0; i <= queueLen + 1; i++) {
        if (!(await page.locator(`[data-test=queue] [data-number="${issued}"]`).count())) break
        // the first counter that can take it: try each in turn
        let called = false
        for (let c = 0; c < n && !called; c++) {
          const before = await counters.nth(c).locator('[data-test=current-number]').textContent().catch(() => null)
          await counters.nth(c).locator('[data-test=call-next]').click()
          await page.waitForTimeout(600)
          const after = await counters.nth(c).locator('[data-test=current-number]').textContent().catch(() => null)
          called = after !== null && after !== before
          if (called && after.trim() === issued) return
        }
        expect(called, `no counter could call a ticket while ${issued} was waiting`)
      }
      const serving = await page.locator('[data-test=current-number]').allTextContents()
      expect(serving.map((s) => s.trim()).includes(issued), `${issued} left the queue but no counter shows it (serving: ${serving.join(', ')})`)
    })
    await step(page, 'lobby: serve-done on the called ticket', async () => {
      const counter = page.locator('[data-test^=counter-]', { has: page.locator(`[data-test=current-number]:text-is("${issued}")`) })
      expect(await counter.count(), `no counter is serving ${issued}`)
      await counter.first().locator('[data-test=serve-done]').click()
      await page.waitForTimeout(800)
      expect(!(await counter.count()), `${issued} is still shown as being served after serve-done`)
    })
    await step(page, 'lobby: the served ticket is rated once on the counter PAD, reaching head office', async () => {
      expect(issued, 'no ticket was served in the previous steps')
      await page.click(`[data-test=ticket-rating-sheet][data-number="${issued}"]`)
      const sheet = '[data-test=rating-sheet]'
      await visible(page, `${sheet} [data-test=customer-rate]`, 'the rating form of the served ticket')
      const codes = await page.locator(`${sheet} [data-test=customer-milestones] [data-code]`).evaluateAll((ms) => ms.map((m) => `${m.dataset.code}:${m.dataset.state}`))
      expect(codes.join() === 'issued:done,called:done,served:done', `ticket milestones: ${codes.join(', ')}`)
      await page.locator(`${sheet} [data-test=customer-stars] .van-rate__item`).nth(4).click()
      await page.click(`${sheet} [data-test=customer-submit]`)
      await visible(page, `${sheet} [data-test=customer-rated]`, 'the thank-you state on the sheet')
      await shot(page, 'lobby_manager-ticket-rated')
      await page.click('[data-test=rating-sheet-close]')
      await page.click(`[data-test=ticket-rating-sheet][data-number="${issued}"]`)
      await visible(page, `${sheet} [data-test=customer-rated]`, 'the already-rated state when the sheet opens again')
      expect(!(await page.locator(`${sheet} [data-test=customer-rate]`).count()), 'a rated ticket still offers the rating form')
      await page.click('[data-test=rating-sheet-close]')
      const line = await inLog(process.env.HQ_LOG, new RegExp(`ticket\\.rated .*"number":"${issued}".*"score":5`), `ticket.rated of ${issued} at head office`)
      console.log(`     head office: ${line.slice(0, 140)}`)
    })
    await step(page, 'lobby: a closed counter calls nobody until it is opened again', async () => {
      // An idle counter (a counter with a called ticket cannot close).
      const idle = page.locator('[data-test^=counter-]:not(:has([data-test=current-number]))').first()
      expect(await idle.count(), 'no idle counter to close')
      const id = (await idle.getAttribute('data-test')).slice('counter-'.length)
      const counter = page.locator(`[data-test="counter-${id}"]`)
      expect(await counter.locator('[data-test=staffed-by]').count(), `counter ${id} shows nobody at it while open`)
      await counter.locator('[data-test=close-counter]').click()
      await confirmDialog(page)
      await counter.locator('[data-test=closed-tag]').waitFor({ timeout: T.action })
        .catch(() => { throw new Error(`counter ${id} does not show as closed after closing it`) })
      expect(!(await counter.locator('[data-test=call-next]').count()), `closed counter ${id} still offers call-next`)
      // The box refuses a call at it, with a code the locales name.
      const r = await page.evaluate(async (cid) => {
        const res = await fetch(`/api/v1/counters/${cid}/call-next`, { method: 'POST' })
        return { status: res.status, body: await res.json() }
      }, id)
      expect(r.status === 409 && r.body.error.code === 'counter_closed', `call-next at closed counter ${id} answered ${r.status} ${JSON.stringify(r.body)}`)
      await counter.locator('[data-test=open-counter]').click()
      await visible(page, '[data-test=open-dialog]', 'the open-counter dialog')
      await confirmDialog(page)
      await counter.locator('[data-test=staffed-by]').waitFor({ timeout: T.action })
        .catch(() => { throw new Error(`counter ${id} does not show who is at it after opening it`) })
      const before = await page.locator('[data-test=queue] li').count()
      await counter.locator('[data-test=call-next]').click()
      if (before > 0) {
        await page.waitForTimeout(800)
        const closedToast = await page.locator('.van-toast:visible', { hasText: /未开放|closed/ }).count()
        expect(!closedToast, `call-next at reopened counter ${id} was refused as closed`)
      }
    })
    await step(page, 'lobby: a queue alert shows and is acknowledged', async () => {
      // A customer waiting past the service's target raises a queue alert (the demo's
      // corporate target is one minute).
      const queueAlert = '[data-test=alerts] [data-kind^="queue."]'
      await page.locator(`${queueAlert} [data-test=ack]`).first().waitFor({ timeout: T.queueAlert })
        .catch(() => { throw new Error(`no unacknowledged queue alert within ${T.queueAlert / 1000} s`) })
      const before = await page.locator(`${queueAlert} [data-test=ack]`).count()
      await page.locator(`${queueAlert} [data-test=ack]`).first().click()
      await page.waitForFunction(([sel, b]) => document.querySelectorAll(sel).length < b, [`${queueAlert} [data-test=ack]`, before], { timeout: T.action })
        .catch(() => { throw new Error('the queue alert still offers "acknowledge" after acknowledging it') })
    })
    await step(page, 'vip: arrivals screen shows', async () => {
      await page.click('[data-test=tab-vip]')
      await page.waitForFunction(() => location.hash.startsWith('#/vip'))
      await visible(page, '[data-test=vip-list], .van-empty', 'the VIP list or its empty state')
      // Against the demo with its entrance camera, the VIP it plays arrives and then takes
      // a ticket, which her card shows.
      const vip = process.env.E2E_EXPECT_VIP
      if (!vip) return
      await page.locator('[data-test=vip-list] .card', { hasText: vip }).first().waitFor({ timeout: 60000 })
        .catch(() => { throw new Error(`no arrival card for ${vip} within 60 s`) })
      await page.locator('[data-test=vip-list] .card', { hasText: vip }).locator('[data-test=vip-ticket]').first().waitFor({ timeout: 60000 })
        .catch(() => { throw new Error(`the arrival card of ${vip} shows no ticket within 60 s`) })
      const card = page.locator('[data-test=vip-list] .card', { hasText: vip }).first()
      await card.locator('[data-test=leads]').waitFor({ timeout: T.action })
        .catch(() => { throw new Error(`the arrival card of ${vip} shows no lead`) })
      await card.locator('[data-test=marks]').waitFor({ timeout: T.action })
        .catch(() => { throw new Error(`the arrival card of ${vip} shows no marks`) })
      await card.locator('[data-test=customer-rights]').waitFor({ timeout: T.action })
        .catch(() => { throw new Error(`the arrival card of ${vip} shows no coupon`) })
      await page.screenshot({ path: join(artifacts, 'vip-arrival.png') })
    })
    await step(page, 'ocr: upload an ID card image and see the fields', async () => {
      await page.click('[data-test=tab-ocr]')
      await page.waitForFunction(() => location.hash.startsWith('#/ocr'))
      await page.locator('[data-test=ocr-kind] [role=radio]').nth(1).click()
      await page.setInputFiles('[data-test=ocr-file]', testImage())
      await visible(page, '[data-test=ocr-fields], [data-test=ocr-error]', 'the OCR result or its error', 30000)
      if (await page.locator('[data-test=ocr-error]').count()) {
        const msg = (await page.locator('[data-test=ocr-error]').textContent()).trim()
        if (!process.env.ID_CARD_IMAGE) return console.log(`     (generated image, the box answered: ${msg})`)
        throw new Error(`the box refused the ID card image: ${msg}`)
      }
      const rows = await page.locator('[data-test=ocr-fields] [data-field]').count()
      expect(rows >= 6, `expected the six ID card fields, saw ${rows}`)
      for (const vp of VIEWPORTS) {
        await page.setViewportSize(vp)
        await page.screenshot({ path: join(artifacts, `lobby_manager-ocr-result-${vp.width}x${vp.height}.png`), fullPage: true })
      }
      await page.setViewportSize(VIEWPORTS[0])
    })
    await step(page, 'ocr: back-fill the confirmed ID card into the head-office order, shown in its detail, no values to head office', async () => {
      const id = process.env.ORDER_ID
      expect(id, 'ORDER_ID not set: run through e2e/against-demo.sh (it books the order with `branchd hq send`)')
      if (!(await page.locator('[data-test=ocr-fields]').count())) throw new Error('no OCR result to fill in (the step before failed)')
      // A chip the demo's reader read may differ: the photo is taken as right.
      for (let i = 0; i < 12; i++) {
        const keep = page.locator('[data-test=keep-photo]')
        if (!(await keep.count())) break
        await keep.first().click()
      }
      await visible(page, `[data-test=fill-orders] [data-id="${id}"]`, `the open order ${id} among the fill targets`)
      await page.click(`[data-test=fill-orders] [data-id="${id}"]`)
      await shot(page, 'lobby_manager-ocr-fill')
      const submit = page.locator('[data-test=ocr-fill-submit]')
      expect(!(await submit.isDisabled()), 'the fill-in button is disabled after choosing the order')
      await submit.click()
      await confirmDialog(page)
      await visible(page, '[data-test=fill-done]', 'the fill-in success message')
      await shot(page, 'lobby_manager-ocr-filled')
      await page.click('[data-test=fill-open-order]')
      await page.waitForFunction((oid) => location.hash.includes(encodeURIComponent(oid)) || location.hash.includes(oid), id, { timeout: T.action })
      await visible(page, '[data-test=order-filled] [data-field=name]', 'the filled customer section in the order detail')
      const truthFile = (process.env.ID_CARD_IMAGE || '').replace(/\.(jpe?g|png)$/i, '.json')
      const truth = existsSync(truthFile) ? JSON.parse(readFileSync(truthFile, 'utf8')) : {}
      await shot(page, 'lobby_manager-order-customer-filled')
      const line = await inLog(process.env.HQ_LOG, new RegExp(`order\\.customer_filled .*"id":"${id}"`), `order.customer_filled of ${id} at head office`)
      for (const key of ['name', 'id_number', 'address']) {
        if (truth[key]) expect(!line.includes(truth[key]), `head office got the ${key} of the filled card: ${line.slice(0, 200)}`)
      }
      console.log(`     head office: ${line.slice(0, 140)}`)
    })
    await step(page, 'ocr: the back of an expired ID card is flagged red', async () => {
      const back = process.env.ID_CARD_BACK_EXPIRED
      if (!back) return console.log('     (ID_CARD_BACK_EXPIRED not set: run through e2e/against-demo.sh)')
      await page.click('[data-test=tab-ocr]')
      await page.waitForFunction(() => location.hash.startsWith('#/ocr'))
      await page.setInputFiles('[data-test=ocr-file]', back)
      await visible(page, '[data-test=ocr-expired], [data-test=ocr-error]', 'the expired flag', 30000)
      if (await page.locator('[data-test=ocr-error]').count()) {
        throw new Error(`the box refused the back side: ${(await page.locator('[data-test=ocr-error]').textContent()).trim()}`)
      }
      await shot(page, 'lobby_manager-ocr-expired')
    })
    await step(page, 'orders: staff view shows', async () => {
      await page.click('[data-test=tab-orders]')
      await visible(page, '[data-test=orders], .van-empty', 'the orders list or its empty state')
      const first = page.locator('[data-test=orders] li').first()
      if (await first.count()) {
        await first.click()
        await visible(page, '[data-test=order-steps]', 'the order steps')
        await page.screenshot({ path: join(artifacts, 'lobby_manager-order-detail-1024x768.png'), fullPage: true })
      }
    })
    await step(page, 'orders: a head-office order approved, every step run and delivered on the PAD, reaching head office', async () => {
      const id = process.env.ORDER_ID
      expect(id, 'ORDER_ID not set: run through e2e/against-demo.sh (it books the order with `branchd hq send`)')
      const detail = '[data-test=order-status]'
      const status = async (want) => {
        await page.waitForFunction(([sel, w]) => document.querySelector(sel)?.dataset.status === w, [detail, want], { timeout: T.action })
          .catch(async () => { throw new Error(`the order is ${await page.locator(detail).getAttribute('data-status')}, not ${want}`) })
      }
      const act = async (action) => {
        await page.click(`[data-test=order-actions] [data-action=${action}]`)
        await confirmDialog(page)
      }
      await page.click('[data-test=tab-orders]')
      await page.click(`[data-test=orders] li[data-id="${id}"]`)
      await status('created')
      const shown = await page.locator('[data-test=order-actions] [data-action]').evaluateAll((bs) => bs.map((b) => b.dataset.action))
      expect(!shown.includes('deliver') && !shown.includes('finish') && shown.includes('approve'), `a new order offers ${shown.join(', ')}`)
      await shot(page, 'lobby_manager-order-actions')
      await act('approve')
      await status('approved')
      expect((await page.locator('[data-test=order-approved-by]').textContent()).includes('lobby'), 'the approver is not shown')
      for (let i = 0; i < 10; i++) {
        const start = page.locator('[data-test=order-actions] [data-action=start]')
        if (!(await start.count())) break
        await act('start')
        await status('executing')
        await visible(page, '[data-test=order-actions] [data-action=finish]', 'the finish button of the running step')
        await act('finish')
        await page.locator('[data-test=order-actions] [data-action=finish]').waitFor({ state: 'detached', timeout: T.action })
      }
      const states = await page.locator('[data-test=order-steps] li').evaluateAll((ls) => ls.map((l) => l.className))
      expect(states.length > 0 && states.every((c) => c.includes('done')), `steps not all done: ${states.join(' | ')}`)
      await act('deliver')
      await status('delivered')
      expect((await page.locator('[data-test=order-delivered-by]').textContent()).includes('lobby'), 'who delivered is not shown')
      expect(!(await page.locator('[data-test=order-actions]').count()), 'a delivered order still offers actions')
      await shot(page, 'lobby_manager-order-delivered')
      const line = await inLog(process.env.HQ_LOG, new RegExp(`order\\.completed .*"id":"${id}".*"status":"delivered"`), `order.completed of ${id} at head office`)
      console.log(`     head office: ${line.slice(0, 140)}`)
      await page.setViewportSize(VIEWPORTS[0])
    })
    await step(page, "customer: the delivered order's receipt, its QR page of milestones, rated once, reaching head office", async () => {
      const id = process.env.ORDER_ID
      expect(id, 'ORDER_ID not set: run through e2e/against-demo.sh')
      // The demo's printer simulator logs what it printed: the receipt with its QR code.
      const esc = id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
      const line = await inLog(process.env.DEMO_LOG, new RegExp(`printer sim printed .*Order: ${esc}.*qr=\\["([^"]+)"\\]`), `the receipt of ${id} on the printer simulator`)
      const qr = line.match(/qr=\["([^"]+)"\]/)[1]
      // On the counter PAD the staff can hand the customer the same page as a full-screen sheet.
      await page.click('[data-test=order-rating-sheet]')
      await visible(page, '[data-test=rating-sheet] [data-test=customer-rate]', 'the rating form on the full-screen sheet')
      const sheet = await page.locator('[data-test=rating-sheet] [data-test=customer-visit]').innerText()
      expect(!/lobby|赵敏/.test(sheet), `staff or customer data on the rating sheet: ${sheet}`)
      await shot(page, 'lobby_manager-order-rating-sheet')
      await page.click('[data-test=rating-sheet-close]')
      await page.locator('[data-test=rating-sheet] [data-test=customer-visit]').waitFor({ state: 'hidden', timeout: T.short })
      expect(qr.startsWith(`${base}/c/`), `the receipt's QR is ${qr}, not a customer page of ${base}`)
      // The customer opens it on their own phone: no session.
      const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, locale: 'zh-CN', timezoneId: 'Asia/Shanghai', hasTouch: true })
      try {
        const c = await phone.newPage()
        c.on('pageerror', (e) => consoleProblems.push(`customer: page error: ${e.message}`))
        await c.goto(qr, { waitUntil: 'domcontentloaded', timeout: T.nav })
        await visible(c, '[data-test=customer-milestones]', 'the milestones on the customer page', T.nav)
        const codes = await c.locator('[data-test=customer-milestones] [data-code]').evaluateAll((ms) => ms.map((m) => `${m.dataset.code}:${m.dataset.state}`))
        expect(codes[0] === 'received:done' && codes[codes.length - 1] === 'delivered:done', `milestones: ${codes.join(', ')}`)
        const text = await c.locator('[data-test=customer-visit]').innerText()
        expect(!/lobby|teller|manager|赵敏|13800000009/.test(text), `staff or customer data on the customer page: ${text}`)
        await c.screenshot({ path: join(artifacts, 'customer-page-zh-390x844.png'), fullPage: true })
        const zh = foreignText(await readableText(c), 'zh-CN')
        expect(zh.length === 0, `the customer page in Chinese shows: ${zh.join('; ')}`)
        await shot(c, 'customer-page-zh')
        await c.setViewportSize({ width: 390, height: 844 })
        await c.click('[data-test=lang-switch]')
        await c.waitForFunction(() => document.documentElement.lang === 'en', null, { timeout: T.short })
        const en = foreignText(await readableText(c), 'en')
        expect(en.length === 0, `the customer page in English shows: ${en.join('; ')}`)
        expect(!/[\u4e00-\u9fff]/.test(await c.locator('[data-test=customer-rate]').innerText()), 'Chinese in the English rating form')
        await c.locator('[data-test=customer-stars] .van-rate__item').nth(3).click()
        await c.click('[data-test=customer-rate] [data-tag=quick]')
        await c.click('[data-test=customer-submit]')
        await visible(c, '[data-test=customer-rated]', 'the thank-you state')
        await c.screenshot({ path: join(artifacts, 'customer-page-rated-en-390x844.png'), fullPage: true })
        const again = await c.evaluate(async (u) => {
          const token = u.split('/c/')[1]
          const r = await fetch(`/api/v1/public/c/${token}/rating`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ score: 1 }) })
          return { status: r.status, body: await r.json() }
        }, qr)
        expect(again.status === 409 && again.body.error.code === 'already_rated', `a second rating answered ${again.status} ${JSON.stringify(again.body)}`)
      } finally {
        await phone.close()
      }
      const hq = await inLog(process.env.HQ_LOG, new RegExp(`order\\.rated .*"id":"${esc}".*"score":4`), `order.rated of ${id} at head office`)
      console.log(`     head office: ${hq.slice(0, 140)}`)
    })
    await step(page, 'shelf: products on the shelf, filtered by type, and the sales ranking', async () => {
      await page.click('[data-test=tab-shelf]')
      await visible(page, '[data-test=products] [data-test=product]', 'the product cards')
      const all = await page.locator('[data-test=product]').count()
      expect(all >= 6, `only ${all} products on the demo shelf`)
      await page.click('[data-test=type-filter] [data-type=wealth]')
      await page.waitForFunction(() => {
        const cards = [...document.querySelectorAll('[data-test=product]')]
        return cards.length > 0 && cards.every((c) => c.dataset.type === 'wealth')
      }, null, { timeout: T.action }).catch(() => { throw new Error('the wealth filter still shows other products') })
      await shot(page, 'lobby_manager-shelf-wealth')
      await page.click('[data-test=type-filter] [data-type=all]')
      await page.waitForFunction((n) => document.querySelectorAll('[data-test=product]').length === n, all, { timeout: T.action })
      await page.locator('.van-tab', { hasText: /销售排行|Sales ranking/ }).click()
      await visible(page, '[data-test=ranking] li', 'the ranking')
      const first = (await page.locator('[data-test=ranking] li .rank').first().textContent()).trim()
      expect(first === '1', `the ranking starts at ${first}`)
      await shot(page, 'lobby_manager-shelf-ranking')
      await page.locator('.van-tab', { hasText: /^\s*(货架|Shelf)\s*$/ }).click()
    })
    await step(page, 'shelf: three products compared side by side', async () => {
      const toggles = page.locator('[data-test=product] [data-test=compare-toggle]')
      for (let i = 0; i < 3; i++) await toggles.nth(i).click()
      await page.click('[data-test=compare-open]')
      await visible(page, '[data-test=compare-table]', 'the comparison')
      const cols = await page.locator('[data-test=compare-table] thead th[data-code]').count()
      expect(cols === 3, `the comparison has ${cols} products, not 3`)
      await shot(page, 'lobby_manager-shelf-compare')
      await closePopup(page)
    })
    await step(page, 'shelf: "show on STM" reaches the STM simulator', async () => {
      await page.click('[data-test=product][data-code="WM-91"] [data-test=product-open]')
      await visible(page, '[data-test=product-detail] [data-test=product-script]', 'the product with its marketing script')
      await page.click('[data-test=show-on-stm]')
      const stm = page.locator('.van-action-sheet__item:visible:not(.van-action-sheet__item--disabled)').first()
      await stm.waitFor({ timeout: T.short }).catch(() => { throw new Error('no online STM offered') })
      const device = (await stm.locator('.van-action-sheet__name').textContent()).trim()
      await stm.click()
      await visible(page, '[data-test=shown-on]', `the confirmation that ${device} shows it`)
      const line = await inLog(process.env.DEMO_LOG, new RegExp(`stm sim shows a product on its screen device=${device} product=WM-91`), `${device}'s simulator showing WM-91`)
      console.log(`     simulator: ${line.slice(line.indexOf('stm sim')).trim()}`)
      await shot(page, 'lobby_manager-shelf-shown')
      await closePopup(page)
    })
    await step(page, 'calculator: time deposit, early withdrawal, loan schedules and the suitability warning', async () => {
      await page.locator('.van-tab', { hasText: /计算器|Calculator/ }).click()
      const calc = '[data-test=calculator]'
      await page.click(`${calc} [data-test=calc-kind] [data-kind=deposit]`)
      await page.fill(`${calc} [data-test=calc-amount] input`, '100000')
      await page.fill(`${calc} [data-test=calc-rate] input`, '2.75')
      await page.fill(`${calc} [data-test=calc-term] input`, '36')
      await page.click(`${calc} [data-test=calc-early]`)
      await page.fill(`${calc} [data-test=calc-early-days] input`, '200')
      await page.fill(`${calc} [data-test=calc-demand-rate] input`, '0.35')
      await page.click(`${calc} [data-test=calc-run]`)
      await visible(page, '[data-test=calc-interest]', 'the deposit interest')
      const interest = (await page.locator('[data-test=calc-interest]').textContent()).trim()
      expect(interest === '¥8,250.00', `100,000 yuan for 3 years at 2.75% earns ${interest}, not ¥8,250.00`)
      const early = await page.locator('[data-test=calc-early-result]').textContent()
      expect(early.includes('¥194.44'), `withdrawn after 200 days at 0.35%: ${early.trim()} (want ¥194.44)`)
      await page.click(`${calc} [data-test=calc-kind] [data-kind=loan]`)
      await page.fill(`${calc} [data-test=calc-amount] input`, '1000000')
      await page.fill(`${calc} [data-test=calc-rate] input`, '4.9')
      await page.fill(`${calc} [data-test=calc-term] input`, '360')
      await page.click(`${calc} [data-test=calc-run]`)
      await visible(page, '[data-test=first-equal_instalments]', 'the loan schedules')
      const ei = (await page.locator('[data-test=first-equal_instalments]').textContent()).trim()
      const ep = (await page.locator('[data-test=first-equal_principal]').textContent()).trim()
      expect(ei === '¥5,307.27' && ep === '¥6,861.11', `1,000,000 over 30 years at 4.9%: ${ei} / ${ep} (want ¥5,307.27 / ¥6,861.11)`)
      await page.click('[data-test=calc-schedule-toggle]')
      await visible(page, '[data-test=calc-schedule] tbody tr', 'the repayment schedule')
      const rows = await page.locator('[data-test=calc-schedule] tbody tr').count()
      expect(rows === 360, `the schedule has ${rows} months`)
      await shot(page, 'lobby_manager-calculator-loan')
      await page.click(`${calc} [data-test=calc-kind] [data-kind=wealth]`)
      await page.click(`${calc} [data-test=calc-product]`)
      await pick(page, /优选成长|Select Growth/)
      await page.fill(`${calc} [data-test=calc-amount] input`, '50000')
      await page.click(`${calc} [data-test=customer-picker]`)
      await pick(page, '王芳')
      await page.click(`${calc} [data-test=calc-run]`)
      await visible(page, '[data-test=suitability-warning]', 'the suitability warning for an R4 fund and a C2 customer')
      await shot(page, 'lobby_manager-calculator-suitability')
    })
    await step(page, 'customers: everyone identified today, searched by name, a lead answered for head office', async () => {
      await page.click('[data-test=tab-customers]')
      await visible(page, '[data-test=customers-list] [data-customer]', 'the customers in the branch')
      const n = await page.locator('[data-test=customers-list] [data-customer]').count()
      expect(n >= 2, `only ${n} customer(s) in the branch (the demo's first tickets carry two)`)
      await page.fill('[data-test=customer-search] input', '王')
      await page.waitForFunction(() => {
        const names = [...document.querySelectorAll('[data-test=customers-list] [data-test=customer-name]')].map((e) => e.textContent)
        return names.length > 0 && names.every((x) => x.includes('王'))
      }, null, { timeout: T.action }).catch(() => { throw new Error('searching 王 still lists others') })
      const card = '[data-test=customers-list] [data-customer="C-10001"]'
      await visible(page, `${card} [data-test=marks]`, "王芳's birthday and maturity marks")
      await visible(page, `${card} [data-lead="L-DEMO-01"]`, "王芳's lead on her arrival card")
      await shot(page, 'lobby_manager-customers-search')
      await page.click(`${card} [data-lead="L-DEMO-01"] [data-test=lead-feedback]`)
      await pick(page, /有意向|Interested/)
      await visible(page, `${card} [data-lead="L-DEMO-01"] [data-test=lead-outcome]`, 'the recorded outcome')
      const line = await inLog(process.env.HQ_LOG, /lead\.feedback .*"lead_id":"L-DEMO-01".*"outcome":"interested"/, 'lead.feedback for L-DEMO-01 at head office')
      console.log(`     head office: ${line.slice(0, 140)}`)
      await page.fill('[data-test=customer-search] input', '')
    })
    await step(page, "rights: a coupon's QR read through the camera, checked and redeemed once, reaching head office", async () => {
      const id = process.env.COUPON_ID
      expect(id && process.env.COUPON_VIDEO, 'COUPON_VIDEO / COUPON_ID not set: run through e2e/against-demo.sh')
      await page.click('[data-test=tab-rights]')
      await page.click('[data-test=rights-customer] [data-test=customer-picker]')
      await pick(page, '王芳')
      await visible(page, '[data-test=available-rights] [data-coupon]', "王芳's coupons from head office")
      await page.click('[data-test=scan-start]')
      await visible(page, '[data-test=coupon-result][data-status=valid]', 'the coupon read from the camera, valid', 20000)
      const right = (await page.locator('[data-test=coupon-right]').textContent()).trim()
      expect(right.includes('¥50.00'), `the coupon reads "${right}" (want a ¥50.00 cash voucher)`)
      await shot(page, 'lobby_manager-rights-checked')
      await page.click('[data-test=coupon-redeem]')
      await visible(page, `[data-test=redeemed-list] [data-coupon="${id}"]`, 'the redemption')
      const line = await inLog(process.env.HQ_LOG, new RegExp(`rights\\.redeemed .*"coupon_id":"${id}"`), `rights.redeemed of ${id} at head office`)
      console.log(`     head office: ${line.slice(0, 140)}`)
      const hq = readFileSync(process.env.HQ_LOG, 'utf8')
      expect(!/^gap:/m.test(hq), 'head office saw a gap in seq')
      await shot(page, 'lobby_manager-rights-redeemed')
    })
    await step(page, 'language: switch to English and back', async () => {
      await page.click('[data-test=tab-lobby]')
      await page.click('[data-test=lang-switch]')
      await page.waitForFunction(() => document.documentElement.lang === 'en', null, { timeout: T.short })
      const tab = (await page.locator('[data-test=tab-lobby]').textContent()).trim()
      expect(tab === 'Lobby', `after switching to English the lobby tab reads "${tab}"`)
      await page.setViewportSize(VIEWPORTS[0])
      await page.screenshot({ path: join(artifacts, 'lobby_manager-lobby-en-1024x768.png'), fullPage: true })
      await page.setViewportSize(VIEWPORTS[1])
      await page.screenshot({ path: join(artifacts, 'lobby_manager-lobby-en-768x1024.png'), fullPage: true })
      for (const screen of ['customers', 'vip', 'shelf', 'rights']) {
        await page.goto(`${base}/#/${screen}`, { waitUntil: 'domcontentloaded' })
        await settle(page)
        await shot(page, `lobby_manager-${screen}-en`)
      }
      await page.goto(`${base}/#/lobby`, { waitUntil: 'domcontentloaded' })
      await page.setViewportSize(VIEWPORTS[0])
      await page.reload({ waitUntil: 'domcontentloaded' })
      await page.waitForFunction(() => document.documentElement.lang === 'en', null, { timeout: T.action })
        .catch(() => { throw new Error('the English choice was not kept after a reload') })
      await page.click('[data-test=lang-switch]')
      await page.waitForFunction(() => document.documentElement.lang === 'zh-CN', null, { timeout: T.short })
    })
  },

  async supervisor(page) {
    await step(page, 'tasks: approve an authorisation task', async () => {
      await visible(page, '[data-test=tasks], .van-empty', 'the task list or its empty state')
      const approve = page.locator('[data-test=tasks] [data-test=approve]')
      expect(await approve.count(), 'no pending authorisation task to approve (the demo should raise one on an STM)')
      const card = page.locator('[data-test=tasks] [data-task]', { has: page.locator('[data-test=approve]') }).first()
      const id = await card.getAttribute('data-task')
      await approve.first().click()
      await confirmDialog(page)
      await page.waitForFunction((tid) => !document.querySelector(`[data-task="${tid}"] [data-test=approve]`), id, { timeout: T.action })
        .catch(() => { throw new Error(`task ${id} still offers "approve" after approving it`) })
    })
  },

  async device_admin(page) {
    await step(page, 'devices: STM sign-out refused, exception resolved, then allowed', async () => {
      await visible(page, '[data-test=devices]', 'the device grid', T.nav)
      const card = page.locator('[data-device]', { has: page.locator('[data-test=open-exceptions]') }).first()
      expect(await card.count(), 'no STM with an open exception (the demo should raise one, e.g. a cash jam)')
      const id = await card.getAttribute('data-device')
      await card.locator('[data-test=sign-out]').click()
      await confirmDialog(page)
      await visible(page, '[data-test=resolver]', `the refusal listing ${id}'s open exceptions`)
      const notes = page.locator('[data-test=resolver] [data-test=resolve-note] textarea')
      const n = await notes.count()
      expect(n > 0, `sign-out of ${id} was refused but no exception is listed to resolve`)
      for (let i = 0; i < n; i++) {
        await notes.first().fill('e2e：已清理卡钞并复位模块')
        await page.locator('[data-test=resolver] [data-test=resolve]').first().click()
        await page.waitForFunction((left) => document.querySelectorAll('[data-test=resolver] [data-test=resolve]').length < left, n - i, { timeout: T.action })
          .catch(() => { throw new Error('an exception stayed listed after resolving it') })
      }
      await page.click('[data-test=sign-out-again]')
      await page.locator('[data-test=resolver]').waitFor({ state: 'hidden', timeout: T.action })
        .catch(() => { throw new Error(`sign-out of ${id} was still refused after resolving its exceptions`) })
    })
    await step(page, 'devices: remote screenshot', async () => {
      const card = page.locator('[data-device]', { has: page.locator('[data-test=remote-ops]:not([disabled])') }).first()
      expect(await card.count(), 'no online STM offers remote operations')
      await card.locator('[data-test=remote-ops]').click()
      await page.locator('.van-action-sheet__item:visible', { hasText: /屏幕截图|Screenshot/ }).click()
      await confirmDialog(page)
      await visible(page, '[data-test=screenshot]', 'the screenshot image', 15000)
      await page.screenshot({ path: join(artifacts, 'device_admin-screenshot.png') })
      await page.keyboard.press('Escape')
      await page.locator('.van-popup__close-icon:visible').first().click().catch(() => {})
    })
  },

  async branch_manager(page) {
    await step(page, 'stats: charts render', async () => {
      await visible(page, '[data-test=charts], .van-empty', 'the charts or the empty state', T.nav)
      if (await page.locator('[data-test=charts]').count()) await visible(page, '[data-test=charts] canvas', 'an ECharts canvas')
    })
    await step(page, 'stats: today\'s figures follow the lobby without a refresh', async () => {
      // The demo's customers take a ticket every 20 s; the count moves on its own.
      const kpi = page.locator('[data-test=kpi-issued]')
      await visible(page, '[data-test=kpi-issued]', 'the tickets-today figure')
      const before = (await kpi.textContent()).trim()
      await page.waitForFunction((b) => {
        const el = document.querySelector('[data-test=kpi-issued]')
        return el && el.textContent.trim() !== b
      }, before, { timeout: 60000 })
        .catch(() => { throw new Error(`tickets today stayed ${before} for a minute while the demo issued tickets`) })
    })
    await step(page, 'stats: any period, by week and by hour', async () => {
      await page.click('.tab-period')
      await page.click('[data-test=period-90]')
      await page.click('[data-test=by-week]')
      await visible(page, '[data-test=period-charts] canvas', 'the period charts', T.nav)
      await settle(page)
      await shot(page, 'branch_manager-stats-period')
      await page.click('[data-test=by-hour]')
      await visible(page, '[data-test=period-charts] canvas', 'the hourly arrivals')
    })
    await step(page, 'stats: forecasts say which model and how much history', async () => {
      await page.click('.tab-forecast')
      await visible(page, '[data-test=forecast-tickets] canvas', 'a ticket forecast chart', T.nav)
      const how = (await page.locator('[data-test=forecast-model]').first().textContent()).trim()
      expect(/MSTL|季节朴素|平均|暂无/.test(how) && /\d+ 天历史/.test(how), `the forecast does not say its model and history: "${how}"`)
      await visible(page, '[data-test=forecast-vouchers]', 'voucher days left')
      await settle(page)
      await shot(page, 'branch_manager-stats-forecast')
      await page.click('[data-test=horizon-30]')
      await settle(page)
      await shot(page, 'branch_manager-stats-forecast-30')
    })
    await step(page, 'stats: the staffing plan beside the counters planned', async () => {
      await page.click('.tab-staffing')
      await visible(page, '[data-test=staffing-charts] canvas', 'the staffing charts', T.nav)
      await settle(page)
      await shot(page, 'branch_manager-stats-staffing')
    })
    await step(page, 'stats: in English', async () => {
      await page.click('[data-test=lang-switch]')
      await page.waitForFunction(() => document.documentElement.lang === 'en', null, { timeout: T.short })
      await page.click('.tab-forecast')
      await visible(page, '[data-test=forecast-model]', 'the forecast model line')
      const how = (await page.locator('[data-test=forecast-model]').first().textContent()).trim()
      expect(/days of history/.test(how), `the English forecast line reads "${how}"`)
      await settle(page)
      await shot(page, 'branch_manager-stats-forecast-en')
      await page.click('.tab-staffing')
      await settle(page)
      await shot(page, 'branch_manager-stats-staffing-en')
      await page.click('[data-test=lang-switch]')
      await page.waitForFunction(() => document.documentElement.lang === 'zh-CN', null, { timeout: T.short })
      await page.click('.tab-today')
    })
    await step(page, 'devices: read-only for the branch manager', async () => {
      await page.click('[data-test=tab-devices]')
      await visible(page, '[data-test=devices], .van-empty', 'the device grid')
      expect(!(await page.locator('[data-test=sign-in], [data-test=sign-out]').count()), 'the branch manager is offered sign-in/sign-out')
    })
    await step(page, 'customers: the relationship manager sees their customers\' leads', async () => {
      await page.click('[data-test=tab-customers]')
      await visible(page, '[data-test=my-leads]', "the leads of the manager's own customers")
      await visible(page, '[data-test=customers-list] [data-customer]', 'the customers in the branch')
    })
  },
}

// ---------------- the self-service kiosk ----------------
/** The box's operations from its OpenAPI document (read with a staff session). */
async function operations() {
  const role = wanted.find((r) => creds[r])
  const { username, password } = creds[role]
  const login = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }),
  })
  expect(login.ok, `login as ${username} to read the route list answered ${login.status}`)
  const cookie = (login.headers.get('set-cookie') || '').split(';')[0]
  const doc = await (await fetch(`${base}/api/v1/openapi.json`, { headers: { cookie } })).json()
  await fetch(`${base}/api/v1/auth/logout`, { method: 'POST', headers: { cookie } })
  const ops = []
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!path.startsWith('/api/v1/')) continue
      const isPublic = Array.isArray(op.security) && op.security.length === 0
      ops.push({ method: method.toUpperCase(), path, sample: path.replace(/\{[^}]+\}/g, '1'), isPublic, roles: op['x-roles'] || [] })
    }
  }
  return ops
}

async function kioskJourney(browser, token) {
  const context = await browser.newContext({ viewport: VIEWPORTS[0], locale: 'zh-CN', timezoneId: 'Asia/Shanghai', hasTouch: true })
  const page = await context.newPage()
  page.on('console', (m) => {
    if (m.type() !== 'error') return
    // The staff routes the journey calls on purpose answer 403.
    if (/Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())) return
    consoleProblems.push(`kiosk: console error: ${m.text()}`)
  })
  page.on('pageerror', (e) => consoleProblems.push(`kiosk: page error: ${e.message}`))
  const services = '[data-test=kiosk-service]'
  const open = `${services}:not([disabled])`
  await step(page, 'kiosk: without its token it says it is not set up', async () => {
    await page.goto(`${base}/#/kiosk`, { waitUntil: 'domcontentloaded', timeout: T.nav })
    await visible(page, '[data-test=kiosk-setup]', 'the "not set up" screen')
    await shot(page, 'kiosk-setup')
  })
  await step(page, 'kiosk: opened once with its token, with no staff login, it lists the services', async () => {
    await page.goto(`${base}/#/kiosk?token=${encodeURIComponent(token)}`, { waitUntil: 'domcontentloaded', timeout: T.nav })
    await visible(page, open, 'a service to choose', T.nav)
    await page.waitForFunction(() => !location.hash.includes('token='), null, { timeout: T.short })
      .catch(() => { throw new Error('the device token stays in the address bar') })
    expect(!(await page.locator('[data-test=user-menu], [data-test=open-alerts], .van-tabbar').count()), 'the kiosk shows staff navigation')
    await shot(page, 'kiosk-start')
    // Reloaded without the token in the address, it signs in again with the saved one.
    await context.clearCookies()
    await page.reload({ waitUntil: 'domcontentloaded' })
    await visible(page, open, 'the services after a reload with no session', T.nav)
  })
  for (const locale of ['zh-CN', 'en']) {
    await step(page, `kiosk (${locale}): a ticket with its number, people ahead and estimated wait, every text in ${locale}`, async () => {
      await page.evaluate((l) => localStorage.setItem('branchd.locale', l), locale)
      await page.goto(`${base}/#/kiosk`, { waitUntil: 'domcontentloaded' })
      await page.reload({ waitUntil: 'domcontentloaded' })
      await page.waitForFunction((l) => document.documentElement.lang === l, locale, { timeout: T.action })
      await visible(page, open, 'a service to choose', T.nav)
      await settle(page)
      const problems = foreignText(await readableText(page), locale).map((p) => `start: ${p}`)
      await page.locator(open).first().click()
      await visible(page, '[data-test=kiosk-ticket]', 'the issued ticket')
      const number = (await page.locator('[data-test=kiosk-number]').textContent()).trim()
      expect(/^[A-Z]+\d+$/.test(number), `the kiosk's ticket number looks wrong: "${number}"`)
      const ahead = (await page.locator('[data-test=kiosk-ahead]').textContent()).trim()
      const wait = (await page.locator('[data-test=kiosk-wait]').textContent()).trim()
      expect(/\d/.test(ahead), `people ahead reads "${ahead}"`)
      expect(wait.length > 0, 'no estimated wait')
      problems.push(...foreignText(await readableText(page), locale).map((p) => `ticket: ${p}`))
      await shot(page, `kiosk-ticket-${locale}`)
      expect(problems.length === 0, `${problems.length} text(s) in the wrong language:\n  ${problems.join('\n  ')}`)
      await page.click('[data-test=kiosk-done]')
      await visible(page, open, 'the start screen again')
    })
  }
  await page.evaluate(() => localStorage.setItem('branchd.locale', 'zh-CN'))
  await step(page, 'kiosk: untouched, it goes back from a ticket in English to its start screen in Chinese', async () => {
    const p = await context.newPage()
    try {
      await p.clock.install()
      await p.goto(`${base}/#/kiosk`, { waitUntil: 'domcontentloaded', timeout: T.nav })
      await visible(p, open, 'a service to choose', T.nav)
      await p.click('[data-test=kiosk-lang]')
      await p.waitForFunction(() => document.documentElement.lang === 'en', null, { timeout: T.short })
      await p.locator(open).first().click()
      await visible(p, '[data-test=kiosk-ticket]', 'the issued ticket')
      await p.clock.fastForward('00:50')
      await visible(p, open, 'the start screen after 50 s untouched')
      await p.waitForFunction(() => document.documentElement.lang === 'zh-CN', null, { timeout: T.short })
        .catch(() => { throw new Error('the kiosk stayed in English after the idle time') })
    } finally {
      await p.close()
    }
  })
  await step(page, 'kiosk: its session is refused (403) on every staff route and let in on its own', async () => {
    const ops = await operations()
    const answers = await page.evaluate(async (list) => {
      const out = []
      for (const op of list) {
        const init = { method: op.method, headers: { 'content-type': 'application/json' } }
        if (op.method !== 'GET') init.body = '{}'
        const ctrl = new AbortController()
        const res = await fetch(op.sample, { ...init, signal: ctrl.signal })
        ctrl.abort() // the event stream would stay open
        out.push({ ...op, status: res.status })
      }
      return out
    }, ops.filter((o) => !o.isPublic))
    const staff = answers.filter((a) => !a.roles.includes('kiosk'))
    const mine = answers.filter((a) => a.roles.includes('kiosk'))
    expect(staff.length >= 20, `only ${staff.length} staff routes in the document`)
    expect(mine.length >= 2, `the document gives the kiosk ${mine.length} routes`)
    const wrong = staff.filter((a) => a.status !== 403).map((a) => `${a.method} ${a.path}: ${a.status}`)
    expect(wrong.length === 0, `staff routes not refused to the kiosk:\n  ${wrong.join('\n  ')}`)
    const shut = mine.filter((a) => a.status === 401 || a.status === 403).map((a) => `${a.method} ${a.path}: ${a.status}`)
    expect(shut.length === 0, `the kiosk's own routes refused it:\n  ${shut.join('\n  ')}`)
    console.log(`     ${staff.length} staff routes answered 403, ${mine.length} kiosk routes let it in`)
  })
  await step(page, 'kiosk: with a token that is no longer valid it says so', async () => {
    await context.clearCookies()
    await page.evaluate(() => localStorage.setItem('branchd.kiosk.token', 'a replaced token'))
    await page.reload({ waitUntil: 'domcontentloaded' })
    await visible(page, '[data-test=kiosk-refused]', 'the "no longer valid" screen', T.nav)
    await shot(page, 'kiosk-refused')
  })
  await context.close()
}

// ---------------- run ----------------
const browser = await pw.chromium.launch({
  executablePath: chromium,
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    // the tablet camera: a video of a coupon's QR code
    ...(process.env.COUPON_VIDEO
      ? ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', `--use-file-for-fake-video-capture=${process.env.COUPON_VIDEO}`]
      : []),
  ],
})
try {
  for (const role of wanted) {
    const context = await browser.newContext({ viewport: VIEWPORTS[0], locale: 'zh-CN', timezoneId: 'Asia/Shanghai', hasTouch: true })
    await context.grantPermissions(['camera'], { origin: base })
    const page = await context.newPage()
    page.on('console', (m) => {
      if (m.type() !== 'error') return
      // Chromium logs every 4xx answer as "Failed to load resource"; the app expects and
      // shows those (401 before login, 409 sign-out refusal, 404 queue_empty). 5xx count.
      if (/Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())) return
      consoleProblems.push(`${role}: console error: ${m.text()}`)
    })
    page.on('pageerror', (e) => consoleProblems.push(`${role}: page error: ${e.message}`))
    page.on('crash', () => consoleProblems.push(`${role}: the page crashed`))
    page.on('requestfailed', (r) => {
      const u = r.url()
      if (!u.startsWith(base) && !u.startsWith('data:') && !u.startsWith('blob:')) consoleProblems.push(`${role}: request outside the box: ${u}`)
    })
    let loggedIn = false
    await step(page, `${role}: log in`, async () => {
      await login(page, role)
      loggedIn = true
    })
    if (loggedIn) {
      await step(page, `${role}: live connection opens`, async () => {
        await page.waitForFunction(() => document.querySelector('[data-test=live-status] i') && getComputedStyle(document.querySelector('[data-test=live-status] i')).backgroundColor === 'rgb(61, 220, 132)', null, { timeout: T.action })
          .catch(() => { throw new Error('the SSE stream on /api/v1/events did not open (status dot not green)') })
      })
      await flows[role](page)
      await step(page, `${role}: screenshots of every screen at 1024x768 and 768x1024, none refused by the box`, () => screenshots(page, role))
      await step(page, `${role}: every screen in Chinese shows no raw code and no English, in English no Chinese`, () => languageScan(page, role))
      await step(page, `${role}: log out`, () => logout(page))
    }
    await context.close()
  }
  if (process.env.KIOSK_TOKEN) await kioskJourney(browser, process.env.KIOSK_TOKEN)
} finally {
  await browser.close()
}

await step(null, 'no console errors and no request outside the box', async () => {
  const unique = [...new Set(consoleProblems)]
  expect(unique.length === 0, `${unique.length} problem(s):\n  ${unique.join('\n  ')}`)
})
const unique = [...new Set(consoleProblems)]
if (unique.length) console.log('  ' + unique.join('\n  '))

const passed = results.filter((r) => r.ok).length
const failed = results.length - passed
writeFileSync(join(artifacts, 'e2e-results.json'), JSON.stringify({ base, results, consoleProblems: unique }, null, 2))
console.log(`screenshots and results in ${artifacts}`)
console.log(`${passed} passed, ${failed} failed`)
process.exit(failed ? 1 : 0)
