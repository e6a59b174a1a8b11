import { createApp } from 'vue'
import { createPinia } from 'pinia'
import {
  ActionSheet, Badge, Button, Cell, CellGroup, Checkbox, CheckboxGroup, Collapse, CollapseItem,
  ConfigProvider, Dialog, Divider, Empty, Field, Form, Icon, Loading, NavBar, NoticeBar, Popup,
  Progress, Radio, RadioGroup, Rate, Search, Step, Steps, Tab, Tabbar, TabbarItem, Tabs, Tag,
} from 'vant'
import 'vant/lib/index.css'
import './styles.css'
import App from './App.vue'
import { i18n } from './i18n.js'
import { applyVantLocale } from './vantLocale.js'
import { createAppRouter } from './router/index.js'
import { setUnauthorizedHandler } from './api/index.js'
import { useSessionStore } from './stores/session.js'
import { reportError } from './utils/notify.js'

const app = createApp(App)
const pinia = createPinia()
app.use(pinia)
app.use(i18n)
const router = createAppRouter()
app.use(router)

for (const c of [ActionSheet, Badge, Button, Cell, CellGroup, Checkbox, CheckboxGroup, Collapse, CollapseItem,
  ConfigProvider, Dialog, Divider, Empty, Field, Form, Icon, Loading, NavBar, NoticeBar, Popup, Progress, Radio,
  Rate, RadioGroup, Search, Step, Steps, Tab, Tabbar, TabbarItem, Tabs, Tag]) app.use(c)

applyVantLocale(i18n.global.locale.value)

// A 401 anywhere: forget the session and go to login, coming back here afterwards.
setUnauthorizedHandler(() => {
  const session = useSessionStore()
  const wasIn = session.loggedIn
  session.expired()
  const cur = router.currentRoute.value
  if (cur.name !== 'login') router.replace({ name: 'login', query: wasIn && cur.fullPath !== '/' ? { redirect: cur.fullPath } : {} })
})

app.config.errorHandler = (err) => {
  console.error(err)
  reportError(err)
}
window.addEventListener('unhandledrejection', (ev) => {
  console.error(ev.reason)
  reportError(ev.reason)
})

app.mount('#app')
