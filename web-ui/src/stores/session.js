import { defineStore } from 'pinia'
import { api } from '../api/index.js'

export const useSessionStore = defineStore('session', {
  state: () => ({ user: null, checked: false }),
  getters: {
    role: (s) => (s.user ? s.user.role : null),
    username: (s) => (s.user ? s.user.display_name || s.user.name || s.user.username : null),
    loginName: (s) => (s.user ? s.user.username || s.user.name || null : null),
    loggedIn: (s) => Boolean(s.user && s.user.role),
  },
  actions: {
    /** Asks the box who we are; a 401 just means "not logged in". */
    async fetchMe() {
      try {
        this.user = await api.me()
      } catch (e) {
        if (e.status !== 401) throw e
        this.user = null
      } finally {
        this.checked = true
      }
      return this.user
    },
    async login(username, password) {
      const res = await api.login(username, password)
      if (res && res.role) this.user = res.user || res
      else if (res && res.user && res.user.role) this.user = res.user
      else await this.fetchMe()
      this.checked = true
      if (!this.user) throw new Error('login succeeded but the session was not kept')
      return this.user
    },
    async logout() {
      try {
        await api.logout()
      } finally {
        this.user = null
      }
    },
    /** Called on a 401 from any request. */
    expired() {
      this.user = null
      this.checked = true
    },
  },
})
