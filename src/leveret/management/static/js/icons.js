// Line icons for the navigation (24x24 grid, drawn with the current text colour).

import { svg } from './dom.js';

const PATHS = {
  overview: ['M3 12a9 9 0 1 1 18 0', 'M12 12l4-4', 'M5 16h14', 'M8 20h8'],
  queues: ['M4 6h16', 'M4 12h16', 'M4 18h10'],
  exchanges: ['M4 8h13', 'M14 4l4 4-4 4', 'M20 16H7', 'M10 12l-4 4 4 4'],
  connections: ['M9 7V3', 'M15 7V3', 'M6 7h12v4a6 6 0 0 1-12 0z', 'M12 17v4'],
  channels: ['M12 3l9 5-9 5-9-5z', 'M3 13l9 5 9-5', 'M3 17.5l9 5 9-5'],
  users: ['M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8z', 'M4 21a8 8 0 0 1 16 0'],
  vhosts: ['M4 4h16v6H4z', 'M4 14h16v6H4z', 'M8 7h.01', 'M8 17h.01'],
  limits: ['M4 17a8 8 0 1 1 16 0', 'M12 17l4-6', 'M4 21h16'],
  policies: ['M12 3l8 3v6c0 5-3.5 8-8 9-4.5-1-8-4-8-9V6z', 'M9 12l2 2 4-4'],
  shovels: ['M4 6h7', 'M4 12h7', 'M4 18h7', 'M14 12h6', 'M17 9l3 3-3 3'],
  definitions: ['M12 4v11', 'M7 10l5 5 5-5', 'M5 20h14'],
};

export function icon(name) {
  return svg('svg', {
    viewBox: '0 0 24 24', width: 18, height: 18, fill: 'none', stroke: 'currentColor',
    'stroke-width': 1.8, 'stroke-linecap': 'round', 'stroke-linejoin': 'round', 'aria-hidden': 'true', class: 'icon',
  }, (PATHS[name] || []).map((d) => svg('path', { d })));
}
