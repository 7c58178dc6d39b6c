import { createRouter, createWebHistory } from 'vue-router'
import CompareView from './views/CompareView.vue'
import RunView from './views/RunView.vue'
import RunsView from './views/RunsView.vue'

// Every page is in the main bundle: one request fewer before a run page can start
// fetching its data.
/** Pages: `/` runs, `/runs/:id` one run, `/compare?runs=a,b` several runs side by side. */
export const router = createRouter({
  history: createWebHistory(),
  routes: [
    { path: '/', name: 'runs', component: RunsView },
    { path: '/runs/:id', name: 'run', component: RunView },
    { path: '/compare', name: 'compare', component: CompareView },
    { path: '/:pathMatch(.*)*', name: 'not-found', redirect: { name: 'runs' } },
  ],
})
