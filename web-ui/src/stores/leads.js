import { defineStore } from 'pinia'
import { api } from '../api/index.js'
import { listOf } from '../utils/normalize.js'
import { loadInto, resourceState } from './resource.js'

export const OUTCOMES = ['contacted', 'interested', 'declined', 'sold']

export const useLeadsStore = defineStore('leads', {
  state: () => resourceState([]),
  getters: {
    /** Open leads of one customer. */
    of: (s) => (customerId) => s.data.filter((l) => l.customer_id === customerId && l.open !== false),
  },
  actions: {
    load() {
      return loadInto(this, () => api.leads(), (b) => listOf(b, 'leads'))
    },
    async feedback(id, outcome, note) {
      const lead = await api.leadFeedback(id, outcome, note)
      const i = this.data.findIndex((l) => l.lead_id === id)
      if (i >= 0) this.data.splice(i, 1, lead)
      return lead
    },
  },
})
