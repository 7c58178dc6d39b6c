import { createRouter, createWebHistory } from 'vue-router'
import RunsView from './views/RunsView.vue'

/** Pages: `/` runs, `/runs/:id` one run, `/compare?runs=a,b` several runs side by side. */
export const router = createRouter({
  history: createWebHistory(),
  routes: [
    { path: '/', name: 'runs', component: RunsView },
    { path: '/runs/:id', name: 'run', component: () => import('./views/RunView.vue') },
    { path: '/compare', name: 'compare', component: () => import('./views/CompareView.vue') },
    { path: '/:pathMatch(.*)*', name: 'not-found', redirect: { name: 'runs' } },
  ],
})
