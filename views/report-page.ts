// Entry point of /reports/:id (server-rendered by the report engine): the <mq-chart> element and the theme toggle.
import './mq-chart.ts';
import { enhanceThemeToggle } from './theme.ts';
import { loadVega } from './vega.ts';

enhanceThemeToggle();
if (document.querySelector('mq-chart')) void loadVega().catch(() => {});
