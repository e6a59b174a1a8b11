// Which screens each role sees, and what it may change.

export const ROLES = ['lobby_manager', 'device_admin', 'supervisor', 'branch_manager']

/** The self-service kiosk's role: a device, not staff; its one screen is `#/kiosk`. */
export const KIOSK_ROLE = 'kiosk'

/** Screens in navigation order, per role. The first is the role's home. */
export const ROLE_SCREENS = {
  lobby_manager: ['lobby', 'customers', 'vip', 'shelf', 'rights', 'ocr', 'orders'],
  supervisor: ['tasks', 'lobby'],
  device_admin: ['devices'],
  branch_manager: ['stats', 'lobby', 'customers', 'shelf', 'devices'],
}

/** Screens a role may only look at. */
const READ_ONLY = {
  supervisor: ['lobby'],
  branch_manager: ['devices'],
}

export const SCREEN_ICONS = {
  lobby: 'friends-o',
  vip: 'diamond-o',
  ocr: 'photograph',
  orders: 'orders-o',
  tasks: 'passed',
  devices: 'desktop-o',
  stats: 'bar-chart-o',
  customers: 'friends',
  shelf: 'gold-coin-o',
  rights: 'coupon-o',
}

export function screensFor(role) {
  return ROLE_SCREENS[role] || []
}

export function homeFor(role) {
  return screensFor(role)[0] || 'login'
}

export function canView(role, screen) {
  return screensFor(role).includes(screen)
}

export function canAct(role, screen) {
  return canView(role, screen) && !(READ_ONLY[role] || []).includes(screen)
}
