import { defineStore } from 'pinia'
import { api } from '../api/index.js'
import { listOf } from '../utils/normalize.js'
import { resourceState } from './resource.js'

export function normalizeArrival(a, fallbackTs) {
  const o = a && typeof a === 'object' ? a : {}
  const c = o.customer && typeof o.customer === 'object' ? o.customer : {}
  const rm = o.relationship_manager ?? c.relationship_manager ?? o.rm ?? null
  return {
    id: String(o.id ?? o.arrival_id ?? `${o.customer_id ?? c.id ?? ''}-${o.ts ?? fallbackTs ?? ''}`),
    customer_id: o.customer_id ?? c.id ?? null,
    name: o.name ?? c.name ?? null,
    level: o.level ?? c.level ?? null,
    tags: (Array.isArray(o.tags) ? o.tags : Array.isArray(c.tags) ? c.tags : []).map((t) => (typeof t === 'string' ? t : t.text || t.label || '')),
    rm: rm && typeof rm === 'object' ? { name: rm.name ?? null, phone: rm.phone ?? null } : rm ? { name: String(rm), phone: null } : null,
    confidence: o.confidence ?? null,
    camera: o.camera ?? o.camera_id ?? null,
    ts: o.ts ?? o.arrived_at ?? fallbackTs ?? null,
    ticket: o.ticket ?? null,
  }
}

export const useVipStore = defineStore('vip', {
  state: () => ({ ...resourceState([]), unsupported: false }),
  actions: {
    /** Today's arrivals; a box without the list route still gets live arrivals. */
    async load() {
      this.active = true
      this.loading = true
      try {
        const body = await api.vipArrivals()
        const fresh = listOf(body, 'arrivals').map((a) => normalizeArrival(a))
        const seen = new Set(fresh.map((a) => a.id))
        this.data = [...this.data.filter((a) => !seen.has(a.id)), ...fresh].sort((a, b) => String(b.ts).localeCompare(String(a.ts)))
        this.error = null
      } catch (e) {
        if (e.status === 404) this.unsupported = true
        else this.error = e
      } finally {
        this.loading = false
      }
    },
    fromEvent(env) {
      const a = normalizeArrival(env.data, env.ts)
      this.data = [a, ...this.data.filter((x) => x.id !== a.id)]
      if (!a.name && this.active && !this.unsupported) this.load()
      return a
    },
    /** The customer of an arrival took a ticket (`vip.ticketed`). */
    ticketed(env) {
      const d = (env && env.data) || {}
      const id = String(d.arrival_id ?? '')
      this.data = this.data.map((a) => (a.id === id ? { ...a, ticket: d.number ?? a.ticket } : a))
    },
  },
})
