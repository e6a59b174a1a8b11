import { createRouter, createWebHashHistory } from 'vue-router'
import { canView, homeFor } from '../roles.js'
import { useSessionStore } from '../stores/session.js'

export const routes = [
  { path: '/login', name: 'login', component: () => import('../views/LoginView.vue'), meta: { public: true } },
  // The self-service kiosk: no staff session (it signs in with its own device token).
  { path: '/kiosk', name: 'kiosk', component: () => import('../views/KioskView.vue'), meta: { public: true, kiosk: true } },
  { path: '/c/:token', name: 'customer', component: () => import('../views/CustomerPageView.vue'), meta: { public: true, bare: true } },
  { path: '/lobby', name: 'lobby', component: () => import('../views/LobbyView.vue'), meta: { screen: 'lobby' } },
  { path: '/vip', name: 'vip', component: () => import('../views/VipView.vue'), meta: { screen: 'vip' } },
  { path: '/tasks', name: 'tasks', component: () => import('../views/TasksView.vue'), meta: { screen: 'tasks' } },
  { path: '/devices', name: 'devices', component: () => import('../views/DevicesView.vue'), meta: { screen: 'devices' } },
  { path: '/ocr', name: 'ocr', component: () => import('../views/OcrView.vue'), meta: { screen: 'ocr' } },
  { path: '/orders/:id?', name: 'orders', component: () => import('../views/OrdersView.vue'), meta: { screen: 'orders' } },
  { path: '/stats', name: 'stats', component: () => import('../views/StatsView.vue'), meta: { screen: 'stats' } },
  { path: '/customers', name: 'customers', component: () => import('../views/CustomersView.vue'), meta: { screen: 'customers' } },
  { path: '/shelf', name: 'shelf', component: () => import('../views/ShelfView.vue'), meta: { screen: 'shelf' } },
  { path: '/rights', name: 'rights', component: () => import('../views/RightsView.vue'), meta: { screen: 'rights' } },
  { path: '/:rest(.*)*', name: 'home', component: { render: () => null } },
]

/** The guard's decision, kept pure for tests: true to go on, or a route to go to. */
export function decide(to, { loggedIn, role }) {
  if (to.meta && to.meta.public) return loggedIn && to.name === 'login' ? { name: homeFor(role) } : true
  if (!loggedIn) return { name: 'login', query: to.fullPath && to.fullPath !== '/' ? { redirect: to.fullPath } : {} }
  if (!to.meta || !to.meta.screen) return { name: homeFor(role) }
  return canView(role, to.meta.screen) ? true : { name: homeFor(role) }
}

export function createAppRouter() {
  const router = createRouter({ history: createWebHashHistory(), routes })
  router.beforeEach(async (to) => {
    // The kiosk asks nothing of a staff session (the box refuses a kiosk's `auth/me`).
    if (to.meta && to.meta.kiosk) return true
    const session = useSessionStore()
    if (!session.checked) {
      try {
        await session.fetchMe()
      } catch (e) {
        console.warn('session check failed:', e.message)
        session.expired()
      }
    }
    return decide(to, { loggedIn: session.loggedIn, role: session.role })
  })
  return router
}
