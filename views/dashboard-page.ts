// Entry point of /dashboards/:id: the dashboard grid, its filter bar and chart tiles, and the theme toggle.
import './mq-dashboard.ts';
import './mq-filter-bar.ts';
import './mq-chart.ts';
import { enhanceThemeToggle } from './theme.ts';
import { loadVega } from './vega.ts';

enhanceThemeToggle();
// Charts are certain on this page: start fetching the vega chunk now rather than when the first tile asks.
if (document.querySelector('mq-chart')) void loadVega().catch(() => {});
