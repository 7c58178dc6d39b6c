import { createRouter, createWebHistory } from 'vue-router'
import { prefetchRunPage } from './lib/sources'
import RunsView from './views/RunsView.vue'

// The run and compare pages are loaded when first visited, so the runs page starts
// with less code to run; a run page's data is requested while its code loads.
const RunView = () => import('./views/RunView.vue')
const CompareView = () => import('./views/CompareView.vue')

/** Pages: `/` runs, `/runs/:id` one run, `/compare?runs=a,b` several runs side by side. */
export const router = createRouter({
  history: createWebHistory(),
  routes: [
    { path: '/', name: 'runs', component: RunsView },
    {
      path: '/runs/:id',
      name: 'run',
      component: RunView,
      beforeEnter: (to) => {
        prefetchRunPage(String(to.params.id), to.query.x === 'time' ? 'time' : 'step')
      },
    },
    { path: '/compare', name: 'compare', component: CompareView },
    { path: '/:pathMatch(.*)*', name: 'not-found', redirect: { name: 'runs' } },
  ],
})
