import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface MinutesOnDay {
  /** A UTC day, YYYY-MM-DD. */
  day: string;
  minutes: number;
}

/**
 * Build minutes per day of the billing period as bars (uPlot: a small canvas chart library with no
 * dependencies; see the README's billing section for why this one). Days are UTC, as the relay
 * counts them.
 */
export function MinutesChart({
  days,
  width = 640,
  height = 220,
}: {
  days: MinutesOnDay[];
  width?: number;
  height?: number;
}) {
  const holder = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const element = holder.current;
    if (element === null) return;
    const style = getComputedStyle(document.documentElement);
    const accent = style.getPropertyValue('--accent').trim() || '#0b5cd6';
    const text = style.getPropertyValue('--muted').trim() || '#5f6670';
    const axis = {
      stroke: text,
      grid: { stroke: 'rgba(127,127,127,0.15)' },
      ticks: { stroke: 'rgba(127,127,127,0.3)' },
    };
    const xs = days.map((d) => Date.parse(`${d.day}T00:00:00Z`) / 1000);
    const DAY_S = 24 * 60 * 60;
    // One label per day (every few days in a long period), with half a day either side for the bars.
    const every = Math.max(1, Math.ceil(xs.length / 10));
    const chart = new uPlot(
      {
        width,
        height,
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
        scales: {
          x: { time: true, range: () => [(xs[0] ?? 0) - DAY_S / 2, (xs[xs.length - 1] ?? 0) + DAY_S / 2] },
          y: { range: (_u, _min, max) => [0, Math.max(5, Math.ceil(max * 1.15))] },
        },
        legend: { show: false },
        cursor: { y: false },
        series: [
          {},
          {
            label: 'Build minutes',
            stroke: accent,
            fill: accent,
            paths: uPlot.paths.bars!({ size: [0.7, 48] }),
            points: { show: false },
          },
        ],
        axes: [
          { ...axis, values: '{MMM} {D}', splits: () => xs.filter((_x, i) => i % every === 0) },
          { ...axis, label: 'minutes', size: 48 },
        ],
      },
      [xs, days.map((d) => d.minutes)],
      element,
    );
    return () => chart.destroy();
  }, [days, width, height]);
  return (
    <div
      ref={holder}
      className="minutes-chart"
      role="img"
      aria-label={`Build minutes per day: ${
        days
          .filter((d) => d.minutes > 0)
          .map((d) => `${d.day} ${d.minutes}`)
          .join(', ') || 'none yet'
      }`}
    />
  );
}
