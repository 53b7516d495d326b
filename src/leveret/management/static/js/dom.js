// Building the DOM: h() creates elements from a tag, attributes and children. Text always
// goes in as text nodes, so broker data (queue names, payloads) can never inject markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'style' && typeof value === 'object') Object.assign(el.style, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'value' || key === 'checked' || key === 'selected') el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** What identifies a focusable element across a re-render: tag, label or text, link. */
function focusKey(el) {
  const label = el.getAttribute('data-focus-key') || el.getAttribute('aria-label') || el.name || el.textContent.trim();
  return `${el.tagName}|${label}|${el.getAttribute('href') || ''}`;
}

/**
 * Replace an element's children. Pages refresh every few seconds by re-filling parts of
 * themselves; when the focus was inside, it moves to the matching new element, so a
 * keyboard user does not lose their place on every refresh.
 */
export function fill(el, ...children) {
  const active = document.activeElement;
  const key = active && active !== el && el.contains(active) ? focusKey(active) : null;
  el.replaceChildren();
  append(el, children);
  if (key) {
    const match = [...el.querySelectorAll('a, button, input, select, textarea, [tabindex]')]
      .find((candidate) => focusKey(candidate) === key);
    match?.focus({ preventScroll: true });
  }
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) el.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

let uid = 0;
/** A unique id for label/input pairs. */
export function nextId(prefix = 'f') {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** A name with line-break opportunities after its separators (. - _ / :), so that a long
 * queue name wraps at a dot in a narrow column rather than in the middle of a word. */
export function breakable(name) {
  return String(name).split(/(?<=[.\-_/:])/).flatMap((part, i) => (i ? [h('wbr'), part] : [part]));
}
