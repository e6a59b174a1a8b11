import { defineStore } from 'pinia'
import { api } from '../api/index.js'
import { listOf } from '../utils/normalize.js'
import { resourceState } from './resource.js'

/** The most products compared side by side. */
export const MAX_COMPARE = 3

const num = (v) => (v === null || v === undefined || v === '' || !Number.isFinite(Number(v)) ? null : Number(v))

/** A product from the box, with every optional figure present (null when absent). */
export function normalizeProduct(p) {
  const o = p && typeof p === 'object' ? p : {}
  return {
    code: String(o.code ?? ''),
    name_zh: o.name_zh ?? o.code ?? '',
    name_en: o.name_en ?? o.name_zh ?? o.code ?? '',
    type: o.type ?? null,
    rate_bp: num(o.rate_bp),
    demand_rate_bp: num(o.demand_rate_bp),
    return_min_bp: num(o.return_min_bp),
    return_max_bp: num(o.return_max_bp),
    term_months: num(o.term_months),
    term_days: num(o.term_days),
    min_amount_fen: num(o.min_amount_fen) ?? 0,
    risk: o.risk ?? null,
    channels: Array.isArray(o.channels) ? o.channels : [],
    script_zh: o.script_zh ?? null,
    script_en: o.script_en ?? null,
    valid_from: o.valid_from ?? null,
    valid_to: o.valid_to ?? null,
    hq_sales: num(o.hq_sales) ?? 0,
    branch_sales: num(o.branch_sales) ?? 0,
    sales: num(o.sales) ?? (num(o.hq_sales) ?? 0) + (num(o.branch_sales) ?? 0),
    rank: num(o.rank),
    on_sale: o.on_sale !== false,
    suitability: o.suitability && typeof o.suitability === 'object' ? o.suitability : null,
  }
}

/** Toggles `code` in a compare list of at most MAX_COMPARE; returns the new list and whether it was full. */
export function toggleCompare(list, code) {
  if (list.includes(code)) return { list: list.filter((c) => c !== code), full: false }
  if (list.length >= MAX_COMPARE) return { list, full: true }
  return { list: [...list, code], full: false }
}

export const useProductsStore = defineStore('products', {
  state: () => ({
    ...resourceState([]),
    filters: { type: '', risk_max: '', q: '', customer_id: '' },
    compare: [],
    stms: [],
    /** Every product on sale, whatever the filters: names for leads, marks and the calculators. */
    catalog: [],
  }),
  getters: {
    ranking: (s) => [...s.data].sort((a, b) => (a.rank ?? 1e9) - (b.rank ?? 1e9)),
    compared: (s) => s.compare.map((c) => s.data.find((p) => p.code === c)).filter(Boolean),
    byCode: (s) => (code) => s.catalog.find((p) => p.code === code) || s.data.find((p) => p.code === code) || null,
  },
  actions: {
    async load() {
      this.active = true
      this.loading = true
      try {
        const query = Object.fromEntries(Object.entries(this.filters).filter(([, v]) => v))
        this.data = listOf(await api.products(query), 'products').map(normalizeProduct)
        this.error = null
        this.loadedAt = Date.now()
      } catch (e) {
        this.error = e
      } finally {
        this.loading = false
      }
      return this.data
    },
    /** Every product on sale whatever the filters. */
    async loadCatalog() {
      try {
        this.catalog = listOf(await api.products({}), 'products').map(normalizeProduct)
      } catch (e) {
        if (e.status !== 401) console.warn('products not loaded:', e.message)
      }
      return this.catalog
    },
    toggle(code) {
      const r = toggleCompare(this.compare, code)
      this.compare = r.list
      return !r.full
    },
    async loadStms() {
      this.stms = listOf(await api.stms(), 'stms')
      return this.stms
    },
    async show(code, device, ticket) {
      return api.showOnStm(code, device, ticket)
    },
  },
})
