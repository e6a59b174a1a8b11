import { defineStore } from 'pinia'
import { api } from '../api/index.js'
import { listOf } from '../utils/normalize.js'
import { resourceState } from './resource.js'

/** A customer in the branch, with every list present. */
export function normalizeCustomer(c) {
  const o = c && typeof c === 'object' ? c : {}
  return {
    customer_id: String(o.customer_id ?? ''),
    name: o.name ?? null,
    level: o.level ?? null,
    risk_level: o.risk_level ?? null,
    relationship_manager: o.relationship_manager ?? null,
    via: Array.isArray(o.via) ? o.via : [],
    arrived_at: o.arrived_at ?? null,
    ticket: o.ticket ?? null,
    ticket_at: o.ticket_at ?? null,
    called_at: o.called_at ?? null,
    left_at: o.left_at ?? null,
    state: o.state ?? 'arrived',
    waited_s: Number.isFinite(Number(o.waited_s)) ? Number(o.waited_s) : null,
    marks: Array.isArray(o.marks) ? o.marks : [],
  }
}

export const useCustomersStore = defineStore('customers', {
  state: () => ({
    ...resourceState([]),
    filters: { q: '', level: '', ticket: '', arrived_after: '', ticket_after: '', min_wait_s: '' },
    /** Everyone in the branch today, whatever the filters (pickers, arrival cards). */
    everyone: [],
  }),
  getters: {
    byId: (s) => (id) => s.everyone.find((c) => c.customer_id === id) || s.data.find((c) => c.customer_id === id) || null,
  },
  actions: {
    async load() {
      this.active = true
      this.loading = true
      try {
        const query = Object.fromEntries(Object.entries(this.filters).filter(([, v]) => v !== '' && v !== null))
        const [list, all] = await Promise.all([
          api.customersPresent(query),
          Object.keys(query).length ? api.customersPresent({}) : null,
        ])
        this.data = listOf(list, 'customers').map(normalizeCustomer)
        this.everyone = all ? listOf(all, 'customers').map(normalizeCustomer) : this.data
        this.error = null
        this.loadedAt = Date.now()
      } catch (e) {
        this.error = e
      } finally {
        this.loading = false
      }
      return this.data
    },
  },
})
