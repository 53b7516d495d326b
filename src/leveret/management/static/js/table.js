// A sortable, filterable table that keeps its sort and filter (per table id, for the
// session) while its rows are replaced on every refresh.

import { fill, h } from './dom.js';

function compare(a, b) {
  const missingA = a === undefined || a === null || a === '';
  const missingB = b === undefined || b === null || b === '';
  if (missingA || missingB) return missingA === missingB ? 0 : missingA ? -1 : 1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a).localeCompare(String(b), undefined, { numeric: true, sensitivity: 'base' });
}

/**
 * columns: [{key, label, value(row), cell(row), numeric, sortable=true, title, hideWhen()}]
 * ``value`` sorts (and, for the filter column, filters); ``cell`` renders (defaults to value).
 */
export function dataTable({
  id, columns, rowKey, noun = ['item', 'items'], filterValue = (row) => row.name,
  empty, toolbar = [], limit = 250, initialSort,
}) {
  const storeKey = `leveret.table.${id}`;
  const saved = JSON.parse(sessionStorage.getItem(storeKey) || 'null') || {};
  const state = {
    sort: saved.sort || initialSort || { key: columns[0].key, dir: 'asc' },
    filter: saved.filter || '',
  };
  let rows = null;

  const save = () => sessionStorage.setItem(storeKey, JSON.stringify(state));
  const filterInput = h('input', {
    type: 'search', class: 'filter', placeholder: `Filter ${noun[1]}…`, value: state.filter,
    'aria-label': `Filter ${noun[1]} by name`, autocomplete: 'off', spellcheck: 'false',
    oninput: () => {
      state.filter = filterInput.value;
      save();
      render();
    },
  });
  const count = h('div', { class: 'table-count', 'aria-live': 'polite' });
  const head = h('thead');
  const body = h('tbody');
  const footer = h('div', { class: 'table-footer' });
  const table = h('table', { class: 'table', id }, head, body);
  const wrap = h('div', { class: 'table-wrap' }, table);
  const holder = h('div', { class: 'table-holder' });
  const el = h('div', { class: 'data-table' },
    h('div', { class: 'table-toolbar' }, filterInput, toolbar, count), holder, footer);

  function visibleColumns() {
    return columns.filter((c) => !(c.hideWhen && c.hideWhen()));
  }

  function renderHead(cols) {
    fill(head, h('tr', {}, cols.map((c) => {
      const sortable = c.sortable !== false;
      const active = state.sort.key === c.key;
      const ariaSort = active ? (state.sort.dir === 'asc' ? 'ascending' : 'descending') : null;
      const label = sortable
        ? h('button', {
          type: 'button', class: 'sort', title: c.title || `Sort by ${c.label}`, 'data-focus-key': `sort-${c.key}`,
          onclick: () => {
            state.sort = { key: c.key, dir: active && state.sort.dir === 'asc' ? 'desc' : 'asc' };
            if (!active && c.numeric) state.sort.dir = 'desc';
            save();
            render();
          },
        }, c.label, h('span', { class: 'sort-mark', 'aria-hidden': 'true' },
          active ? (state.sort.dir === 'asc' ? '▲' : '▼') : ''))
        : h('span', { title: c.title }, c.label);
      return h('th', { scope: 'col', class: c.numeric ? 'num' : null, 'aria-sort': ariaSort }, label);
    })));
  }

  function render() {
    const cols = visibleColumns();
    if (rows === null) return;
    if (!rows.length) {
      fill(count);
      fill(footer);
      fill(holder, empty || h('div', { class: 'empty' }, `No ${noun[1]}.`));
      return;
    }
    const needle = state.filter.trim().toLowerCase();
    let shown = needle ? rows.filter((r) => String(filterValue(r) ?? '').toLowerCase().includes(needle)) : rows.slice();
    const column = columns.find((c) => c.key === state.sort.key) || columns[0];
    const valueOf = column.value || ((r) => r[column.key]);
    shown.sort((a, b) => compare(valueOf(a), valueOf(b)) * (state.sort.dir === 'asc' ? 1 : -1));
    const matched = shown.length;
    shown = shown.slice(0, limit);
    fill(count, needle
      ? `${matched} of ${rows.length} ${rows.length === 1 ? noun[0] : noun[1]}`
      : `${rows.length} ${rows.length === 1 ? noun[0] : noun[1]}`);
    renderHead(cols);
    fill(body, shown.length
      ? shown.map((row) => h('tr', { dataset: rowKey ? { key: rowKey(row) } : undefined },
        cols.map((c) => {
          const content = c.cell ? c.cell(row) : (c.value ? c.value(row) : row[c.key]);
          return h(c.header ? 'th' : 'td', { class: [c.numeric && 'num', c.className], scope: c.header ? 'row' : null },
            content === undefined || content === null || content === '' ? '–' : content);
        })))
      : h('tr', {}, h('td', { colspan: cols.length, class: 'no-match' }, `No ${noun[1]} match “${state.filter}”.`)));
    fill(footer, matched > limit
      ? `Showing the first ${limit} of ${matched}; narrow the filter to see the others.` : null);
    if (holder.firstChild !== wrap) fill(holder, wrap);
  }

  return {
    el,
    update(newRows) {
      rows = newRows;
      render();
    },
    rerender: render,
  };
}
