// A small SVG time-series chart: lines over a time axis, "nice" y ticks, a legend whose
// buttons show and hide each series, and a readout of the values at a point in time, under
// the pointer or, with the chart focused, moved with the arrow keys.

import { fill, h, svg } from './dom.js';
import { clock } from './format.js';

const HEIGHT = 190;
const PAD = { top: 12, right: 14, bottom: 24, left: 48 };
const MIN_SPAN = 60 * 1000;
const TIME_STEPS = [10, 15, 30, 60, 120, 300].map((s) => s * 1000);

function niceStep(max, ticks) {
  const raw = max / ticks;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw);
  return step || power * 10;
}

/**
 * series: [{key, label, color}]; format(value, isAxis) labels values; window: the most ms shown.
 * update(points) with points = [{t, <key>: value...}] sorted by time.
 */
export function lineChart({ title, series, format, window: maxSpan = 10 * 60 * 1000, emptyText }) {
  const hidden = new Set();
  let points = [];
  const plot = h('div', { class: 'chart-plot' });
  const legend = h('div', { class: 'legend', role: 'group', 'aria-label': `${title}: series` });
  const readout = h('div', { class: 'chart-readout', 'aria-live': 'off' });
  const el = h('figure', { class: 'chart', dataset: { chart: title } }, plot, legend, readout);
  const observer = new ResizeObserver(() => draw());
  observer.observe(plot);

  function latest(key) {
    for (let i = points.length - 1; i >= 0; i -= 1) {
      if (points[i][key] !== undefined) return points[i][key];
    }
    return undefined;
  }

  function drawLegend() {
    fill(legend, series.map((s) => h('button', {
      type: 'button', class: 'legend-item', 'aria-pressed': String(!hidden.has(s.key)),
      title: hidden.has(s.key) ? `Show ${s.label}` : `Hide ${s.label}`,
      dataset: { series: s.key },
      onclick: () => {
        if (hidden.has(s.key)) hidden.delete(s.key); else hidden.add(s.key);
        drawLegend();
        draw();
      },
    }, h('span', { class: 'swatch', style: { background: s.color } }),
    h('span', { class: 'legend-label' }, s.label))));
  }

  function draw() {
    const width = Math.max(plot.clientWidth, 200);
    // a point may carry other charts' values only (the API samples lengths and rates apart)
    const own = points.filter((p) => series.some((s) => p[s.key] !== undefined));
    const now = own.length ? own[own.length - 1].t : Date.now();
    // Show what there is, between one minute and the whole window.
    const span = Math.min(maxSpan, Math.max(MIN_SPAN, now - (own[0]?.t ?? now)));
    const start = now - span;
    const shown = own.filter((p) => p.t >= start);
    el.dataset.points = String(shown.length);
    const visible = series.filter((s) => !hidden.has(s.key));
    if (shown.length < 2) {
      fill(plot, h('div', { class: 'chart-empty', style: { height: `${HEIGHT}px` } },
        emptyText || 'Collecting samples: the chart fills in every few seconds.'));
      return;
    }
    let max = 0;
    for (const p of shown) for (const s of visible) max = Math.max(max, p[s.key] ?? 0);
    const ticks = 4;
    const step = niceStep(max > 0 ? max : 1, ticks);
    const top = step * Math.max(1, Math.ceil((max || 1) / step));
    const innerW = width - PAD.left - PAD.right;
    const innerH = HEIGHT - PAD.top - PAD.bottom;
    const x = (t) => PAD.left + ((t - start) / span) * innerW;
    const y = (v) => PAD.top + innerH - (v / top) * innerH;

    const grid = [];
    for (let v = 0; v <= top + step / 2; v += step) {
      grid.push(svg('line', { x1: PAD.left, x2: width - PAD.right, y1: y(v), y2: y(v), class: 'grid' }));
      grid.push(svg('text', { x: PAD.left - 8, y: y(v) + 4, class: 'axis', 'text-anchor': 'end' }, format(v, true)));
    }
    const tickEvery = TIME_STEPS.find((step) => span / step <= 6) || TIME_STEPS[TIME_STEPS.length - 1];
    for (let t = Math.ceil(start / tickEvery) * tickEvery; t <= now; t += tickEvery) {
      if (x(t) < PAD.left + 16 || x(t) > width - PAD.right - 16) continue;
      grid.push(svg('text', { x: x(t), y: HEIGHT - 6, class: 'axis', 'text-anchor': 'middle' },
        tickEvery < 60000 ? clock(t) : clock(t).slice(0, 5)));
    }
    const lines = visible.map((s, index) => {
      const coords = shown.filter((p) => p[s.key] !== undefined).map((p) => `${x(p.t).toFixed(1)},${y(p[s.key]).toFixed(1)}`);
      const area = coords.length && index === 0 // one light area under the first line only
        ? svg('path', {
          d: `M${coords[0].split(',')[0]},${y(0)} L${coords.join(' L')} L${coords[coords.length - 1].split(',')[0]},${y(0)} Z`,
          style: `fill:${s.color}`, class: 'area',
        }) : null;
      return [area, svg('polyline', { points: coords.join(' '), style: `stroke:${s.color}`, class: 'line', 'data-series': s.key })];
    });
    const cross = svg('line', { class: 'crosshair', y1: PAD.top, y2: PAD.top + innerH, x1: 0, x2: 0 });
    const dots = visible.map((s) => svg('circle', { r: 3.5, style: `fill:${s.color}`, class: 'dot', cx: 0, cy: 0 }));
    const pointer = svg('g', { class: 'pointer' }, cross, dots);
    const chart = svg('svg', {
      width, height: HEIGHT, viewBox: `0 0 ${width} ${HEIGHT}`, role: 'img', tabindex: 0, 'data-focus-key': `chart-${title}`,
      'aria-label': `${title}: ${visible.map((s) => `${s.label} ${format(latest(s.key) ?? 0)}`).join(', ')}`,
    }, grid, lines, pointer);
    let cursor = shown.length - 1;
    const show = (index) => {
      cursor = Math.max(0, Math.min(shown.length - 1, index));
      const p = shown[cursor];
      cross.setAttribute('x1', x(p.t));
      cross.setAttribute('x2', x(p.t));
      visible.forEach((s, i) => {
        dots[i].setAttribute('cx', x(p.t));
        dots[i].setAttribute('cy', y(p[s.key] ?? 0));
      });
      fill(readout, h('span', { class: 'readout-time' }, clock(p.t)),
        visible.map((s) => h('span', { class: 'readout-item' },
          h('span', { class: 'swatch', style: { background: s.color } }), `${s.label} ${format(p[s.key] ?? 0)}`)));
      readout.classList.add('on');
      pointer.classList.add('on');
    };
    const hide = () => {
      readout.classList.remove('on');
      pointer.classList.remove('on');
    };
    chart.addEventListener('pointermove', (e) => {
      const box = chart.getBoundingClientRect();
      const t = start + ((e.clientX - box.left - PAD.left) / innerW) * span;
      let best = 0;
      shown.forEach((p, i) => {
        if (Math.abs(p.t - t) < Math.abs(shown[best].t - t)) best = i;
      });
      show(best);
    });
    chart.addEventListener('pointerleave', hide);
    chart.addEventListener('focus', () => show(cursor));
    chart.addEventListener('blur', hide);
    chart.addEventListener('keydown', (e) => {
      const step = { ArrowLeft: -1, ArrowRight: 1, Home: -shown.length, End: shown.length }[e.key];
      if (step) {
        e.preventDefault();
        show(cursor + step);
      }
    });
    fill(plot, chart);
  }

  drawLegend();
  draw();
  return {
    el,
    update(newPoints) {
      points = newPoints || [];
      drawLegend();
      draw();
    },
    disconnect() {
      observer.disconnect();
    },
  };
}
