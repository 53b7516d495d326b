// Shared pieces of every page: headers, cards, stats, badges, form fields, notices, dialogs,
// tabs. Pages compose these so the whole UI looks and behaves the same.

import { fill, h, nextId } from './dom.js';

// -- layout ----------------------------------------------------------------------------------

export function pageHeader({ title, kicker, badges = [], actions = [], back }) {
  return h('header', { class: 'page-header' },
    h('div', { class: 'page-title' },
      back ? h('a', { class: 'back-link', href: back.href }, `← ${back.label}`) : null,
      kicker ? h('div', { class: 'kicker' }, kicker) : null,
      h('h1', {}, title),
      badges.length ? h('div', { class: 'badges' }, badges) : null),
    actions.length ? h('div', { class: 'page-actions' }, actions) : null);
}

export function card({ title, actions = [], id, className }, ...body) {
  const headingId = id || nextId('card');
  return h('section', { class: ['card', className], 'aria-labelledby': title ? headingId : null },
    title || actions.length
      ? h('div', { class: 'card-header' },
        title ? h('h2', { id: headingId }, title) : h('span'),
        actions.length ? h('div', { class: 'card-actions' }, actions) : null)
      : null,
    h('div', { class: 'card-body' }, body));
}

export function stat(label, value, { hint, key, tone } = {}) {
  return h('div', { class: ['stat', tone && `tone-${tone}`], dataset: key ? { stat: key } : undefined },
    h('div', { class: 'stat-label' }, label),
    h('div', { class: 'stat-value' }, value),
    hint ? h('div', { class: 'stat-hint' }, hint) : null);
}

export function stats(items) {
  return h('div', { class: 'stats' }, items);
}

export function badge(text, tone = 'neutral', title) {
  return h('span', { class: `badge badge-${tone}`, title }, text);
}

/** A definition list of label/value pairs; values may be nodes. */
export function keyValues(pairs) {
  return h('dl', { class: 'kv' }, pairs.filter(Boolean).flatMap(([k, v]) => [
    h('dt', {}, k), h('dd', {}, v === undefined || v === null || v === '' ? '–' : v)]));
}

/** Arguments, headers or client properties: key / value rows (nested tables indented). */
export function fieldTable(table) {
  const entries = Object.entries(table || {});
  if (!entries.length) return h('span', { class: 'muted' }, 'none');
  return h('div', { class: 'args' }, entries.map(([k, v]) => (v && typeof v === 'object' && !Array.isArray(v)
    ? h('div', { class: 'arg arg-nested' }, h('span', { class: 'arg-key' }, k), fieldTable(v))
    : h('div', { class: 'arg' }, h('span', { class: 'arg-key' }, k),
      h('span', { class: 'arg-value' }, typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v))))));
}

export function empty(title, text, action) {
  return h('div', { class: 'empty' },
    h('div', { class: 'empty-title' }, title),
    text ? h('p', {}, text) : null,
    action || null);
}

export function errorPanel(error, retry) {
  return h('div', { class: 'notice notice-error', role: 'alert' },
    h('strong', {}, 'Something went wrong. '), error.message || String(error),
    retry ? h('button', { class: 'btn btn-small', type: 'button', onclick: retry }, 'Try again') : null);
}

export function loading(text = 'Loading…') {
  return h('div', { class: 'loading', role: 'status' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), text);
}

// -- buttons and forms -----------------------------------------------------------------------

export function button(label, onclick, { kind = 'secondary', type = 'button', title, small, icon, ...rest } = {}) {
  return h('button', {
    class: ['btn', `btn-${kind}`, small && 'btn-small'], type, title, onclick, ...rest,
  }, icon ? h('span', { class: 'icon', 'aria-hidden': 'true' }, icon) : null, label);
}

/** A labelled control; ``control`` is an input/select/textarea (its id is set here). */
export function field(label, control, { hint, wide, inline } = {}) {
  // ``control`` may be a wrapper (an editor with its buttons): label its first form control.
  const target = control.matches('input, select, textarea')
    ? control : control.querySelector('input, select, textarea') || control;
  const id = target.id || nextId('field');
  target.id = id;
  const hintId = hint ? `${id}-hint` : null;
  if (hintId) target.setAttribute('aria-describedby', hintId);
  if (inline) {
    return h('div', { class: 'field field-inline' }, control, h('label', { for: id }, label),
      hint ? h('div', { class: 'hint', id: hintId }, hint) : null);
  }
  return h('div', { class: ['field', wide && 'field-wide'] }, h('label', { for: id }, label), control,
    hint ? h('div', { class: 'hint', id: hintId }, hint) : null);
}

export function input(name, attrs = {}) {
  return h('input', { name, type: 'text', autocomplete: 'off', spellcheck: 'false', ...attrs });
}

export function checkbox(name, checked = false, attrs = {}) {
  return h('input', { name, type: 'checkbox', checked, ...attrs });
}

export function select(name, options, selected, attrs = {}) {
  return h('select', { name, ...attrs }, options.map((o) => {
    const [value, label] = Array.isArray(o) ? o : [o, o];
    return h('option', { value, selected: value === selected }, label);
  }));
}

export function textarea(name, attrs = {}) {
  return h('textarea', { name, spellcheck: 'false', rows: 4, ...attrs });
}

/**
 * A form whose submit runs ``onSubmit(form)``; while it runs the submit button is busy,
 * and an ApiError shows in the form's message area (role=alert).
 */
export function form({ className, submitLabel, onSubmit, extraActions = [], label }, ...fields) {
  const message = h('div', { class: 'form-message', role: 'status', 'aria-live': 'polite' });
  const submit = h('button', { class: 'btn btn-primary', type: 'submit' }, submitLabel);
  const el = h('form', { class: ['form', className], novalidate: true, 'aria-label': label },
    h('div', { class: 'form-fields' }, fields),
    h('div', { class: 'form-actions' }, submit, extraActions, message));
  el.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!el.checkValidity()) {
      const invalid = el.querySelector(':invalid');
      showMessage(message, 'error', invalid?.validationMessage
        ? `${labelOf(invalid)}: ${invalid.validationMessage}` : 'Please check the form.');
      invalid?.focus();
      return;
    }
    submit.disabled = true;
    el.setAttribute('aria-busy', 'true');
    fill(message);
    try {
      const done = await onSubmit(el);
      if (done) showMessage(message, 'success', done);
    } catch (exc) {
      showMessage(message, 'error', exc.message || String(exc));
    } finally {
      submit.disabled = false;
      el.removeAttribute('aria-busy');
    }
  });
  return el;
}

function labelOf(control) {
  const label = control.id && control.form?.querySelector(`label[for="${control.id}"]`);
  return label ? label.textContent : control.name;
}

export function showMessage(el, kind, text) {
  el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  fill(el, h('span', { class: `msg msg-${kind}` }, text));
}

export function values(formEl) {
  const out = {};
  for (const control of formEl.elements) {
    if (!control.name) continue;
    if (control.type === 'checkbox') out[control.name] = control.checked;
    else out[control.name] = control.value;
  }
  return out;
}

/**
 * "key = value" lines as an object (arguments, headers, policy definitions). Values that
 * read as JSON (numbers, true/false, quoted strings, objects) keep their type; anything
 * else is a string.
 */
export function parseFields(text) {
  const result = {};
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  for (const line of lines) {
    const at = line.indexOf('=');
    if (at < 1) throw new Error(`"${line}" is not a key = value line`);
    const key = line.slice(0, at).trim();
    const raw = line.slice(at + 1).trim();
    let value = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      value = raw;
    }
    result[key] = value;
  }
  return result;
}

/** A textarea for key = value lines plus buttons that add common keys. */
export function fieldsEditor(name, { suggestions = [], placeholder = 'key = value', rows = 3 } = {}) {
  const area = textarea(name, { rows, placeholder, class: 'mono' });
  const chips = suggestions.length
    ? h('div', { class: 'chips', role: 'group', 'aria-label': 'Add a common key' },
      suggestions.map(([key, example, help]) => h('button', {
        type: 'button', class: 'chip', title: help,
        onclick: () => {
          const lines = area.value.split('\n').filter((l) => l.trim());
          if (!lines.some((l) => l.split('=')[0].trim() === key)) lines.push(`${key} = ${example}`);
          area.value = lines.join('\n');
          area.focus();
        },
      }, `+ ${key}`)))
    : null;
  return { area, chips };
}

// -- notices ---------------------------------------------------------------------------------

export function toast(text, kind = 'success') {
  const host = document.getElementById('toasts');
  if (!host) return;
  const el = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
  host.append(el);
  setTimeout(() => el.classList.add('toast-leaving'), 3800);
  setTimeout(() => el.remove(), 4200);
}

/**
 * A modal confirmation (native <dialog>: focus is trapped and Escape cancels). With
 * ``input`` it asks for a text too and resolves to it; otherwise to true. Cancel gives null.
 */
export function confirmDialog({ title, message, confirmLabel = 'Confirm', danger = false, input: ask }) {
  return new Promise((resolve) => {
    const field_ = ask ? input('answer', { value: ask.value || '', placeholder: ask.placeholder || '' }) : null;
    const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': 'dialog-title' },
      h('form', { method: 'dialog' },
        h('h2', { id: 'dialog-title' }, title),
        message ? h('p', {}, message) : null,
        field_ ? field(ask.label, field_) : null,
        h('div', { class: 'dialog-actions' },
          h('button', { class: 'btn btn-secondary', value: 'cancel', type: 'submit' }, 'Cancel'),
          h('button', { class: `btn ${danger ? 'btn-danger' : 'btn-primary'}`, value: 'ok', type: 'submit' },
            confirmLabel))));
    dialog.addEventListener('close', () => {
      const ok = dialog.returnValue === 'ok';
      dialog.remove();
      resolve(ok ? (field_ ? field_.value : true) : null);
    });
    document.body.append(dialog);
    dialog.showModal();
    (field_ || dialog.querySelector('.btn-secondary')).focus();
  });
}

// -- tabs ------------------------------------------------------------------------------------

/** WAI-ARIA tabs: arrow keys move between tabs; the chosen tab is remembered per ``key``. */
export function tabs(key, items) {
  const stored = sessionStorage.getItem(`leveret.tab.${key}`);
  let current = items.some((t) => t.id === stored) ? stored : items[0].id;
  const buttons = [];
  const panels = [];
  const list = h('div', { class: 'tabs', role: 'tablist' });
  const select = (id, focus) => {
    current = id;
    sessionStorage.setItem(`leveret.tab.${key}`, id);
    buttons.forEach((b, i) => {
      const on = items[i].id === id;
      b.setAttribute('aria-selected', String(on));
      b.tabIndex = on ? 0 : -1;
      panels[i].hidden = !on;
      if (on && focus) b.focus();
    });
  };
  items.forEach((item, i) => {
    const tabId = `tab-${key}-${item.id}`;
    const b = h('button', {
      class: 'tab', role: 'tab', id: tabId, type: 'button', 'aria-controls': `${tabId}-panel`,
      onclick: () => select(item.id),
      onkeydown: (e) => {
        const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
        if (step) {
          e.preventDefault();
          select(items[(i + step + items.length) % items.length].id, true);
        }
      },
    }, item.label, item.count !== undefined ? h('span', { class: 'tab-count' }, item.count) : null);
    buttons.push(b);
    list.append(b);
    panels.push(h('div', { class: 'tab-panel', role: 'tabpanel', id: `${tabId}-panel`, 'aria-labelledby': tabId },
      item.content));
  });
  select(current);
  return {
    el: h('div', { class: 'tabset' }, list, panels),
    setCount(id, count) {
      const i = items.findIndex((t) => t.id === id);
      const holder = buttons[i]?.querySelector('.tab-count');
      if (holder) holder.textContent = count;
    },
  };
}
