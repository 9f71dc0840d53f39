// The simulated player of /titles/:id/play (no video files exist): a clock advances the position while "playing"
// (at the chosen speed), the range input seeks, and the position reached is reported to
// POST /api/play/:titleId/progress — every 10 s of playing, on pause, seek, the end, and when the page is left. The
// server keeps one watch_events row per viewing session: the first answer names the session, later reports send it.
import { enhanceThemeToggle } from './theme.ts';

interface Progress { session: number; secondsWatched: number; completed: boolean; duration: number }

const REPORT_EVERY_MS = 10_000;

function fmt(s: number): string {
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
  const mm = String(m).padStart(h ? 2 : 1, '0'), ss = String(sec).padStart(2, '0');
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

function setup(root: HTMLElement) {
  const titleId = Number(root.dataset.titleId);
  const duration = Number(root.dataset.duration);
  let position = Math.min(Number(root.dataset.start) || 0, duration);
  const toggle = root.querySelector<HTMLButtonElement>('button.toggle')!;
  const seek = root.querySelector<HTMLInputElement>('input[type=range]')!;
  const speed = root.querySelector<HTMLSelectElement>('.speed select')!;
  const time = root.querySelector<HTMLElement>('.time')!;
  const status = root.querySelector<HTMLElement>('.status')!;
  let session: number | null = null;
  let playing = false;
  let timer: number | undefined;
  let lastTick = 0;
  let lastReport = 0;
  let inflight: Promise<void> = Promise.resolve();
  let completed = false;

  const render = () => {
    seek.value = String(Math.floor(position));
    seek.setAttribute('aria-valuetext', `${fmt(position)} of ${fmt(duration)}`);
    time.textContent = `${fmt(position)} / ${fmt(duration)}`;
    toggle.textContent = playing ? '❚❚ Pause' : position >= duration ? '↺ Play again' : position > 0 ? '▶ Resume' : '▶ Play';
    toggle.setAttribute('aria-pressed', String(playing));
    root.classList.toggle('playing', playing);
  };

  // Reports go one after another (so the first answer's session id is known before the next report).
  const report = (keepalive = false) => {
    const at = Math.floor(position);
    lastReport = performance.now();
    inflight = inflight.then(async () => {
      try {
        const res = await fetch(`/api/play/${titleId}/progress`, {
          method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
          body: JSON.stringify({ position: at, ...(session ? { session } : {}) }),
          keepalive, credentials: 'same-origin',
        });
        const data = await res.json();
        if (!res.ok) { status.textContent = data?.error?.message ?? `Progress not saved (${res.status})`; return; }
        const p = data as Progress;
        session = p.session;
        root.dataset.session = String(p.session);
        root.dataset.saved = String(p.secondsWatched);
        if (p.completed && !completed) { completed = true; status.textContent = 'Watched: marked as completed.'; }
      } catch {
        status.textContent = 'Progress not saved: the connection failed. Retrying with the next report.';
      }
    });
  };

  const tick = () => {
    const now = performance.now();
    position = Math.min(duration, position + ((now - lastTick) / 1000) * Number(speed.value));
    lastTick = now;
    if (position >= duration) { pause(); status.textContent = 'Finished.'; report(); return; }
    if (now - lastReport >= REPORT_EVERY_MS) report();
    render();
  };
  const play = () => {
    if (position >= duration) position = 0;
    playing = true; lastTick = performance.now();
    timer = window.setInterval(tick, 250);
    status.textContent = 'Playing.';
    if (!session) report();
    render();
  };
  function pause() {
    playing = false;
    window.clearInterval(timer);
    render();
  }

  toggle.addEventListener('click', () => {
    if (playing) { pause(); status.textContent = 'Paused.'; report(); } else play();
  });
  seek.addEventListener('input', () => { position = Number(seek.value); render(); });
  seek.addEventListener('change', () => { position = Number(seek.value); report(); render(); });
  // Leaving the page: one last report that outlives it.
  window.addEventListener('pagehide', () => { if (session || playing) report(true); });

  for (const el of [toggle, seek, speed]) el.disabled = false;
  status.textContent = position > 0 ? `Ready to resume at ${fmt(position)}.` : 'Ready.';
  render();
}

enhanceThemeToggle();
for (const el of document.querySelectorAll<HTMLElement>('.player[data-title-id]')) setup(el);
