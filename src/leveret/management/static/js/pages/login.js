// The login page: Basic credentials checked against /api/whoami, then kept in
// sessionStorage (this tab only, gone when it closes).

import { get, saveCredentials } from '../api.js';
import { h } from '../dom.js';
import { field, form, input } from '../ui.js';

export function loginPage({ message, onLogin }) {
  const username = input('username', { required: true, autocomplete: 'username', autofocus: true });
  const password = input('password', { type: 'password', autocomplete: 'current-password' });
  const loginForm = form({
    className: 'login-form', submitLabel: 'Log in', label: 'Log in',
    onSubmit: async () => {
      const creds = { username: username.value.trim(), password: password.value };
      const user = await get('/whoami', { auth: creds });
      saveCredentials(creds.username, creds.password);
      onLogin(user);
      return null;
    },
  }, field('User name', username), field('Password', password));
  if (message) {
    const area = loginForm.querySelector('.form-message');
    area.setAttribute('role', 'alert');
    area.append(h('span', { class: 'msg msg-error' }, message));
  }
  queueMicrotask(() => username.focus());
  return h('div', { class: 'login' },
    h('main', { class: 'login-card', id: 'main' },
      h('div', { class: 'login-brand' },
        h('img', { src: 'favicon.svg', alt: '', width: 44, height: 44 }),
        h('div', {}, h('h1', {}, 'leveret'), h('p', { class: 'muted' }, 'Message broker management'))),
      loginForm,
      h('p', { class: 'login-foot muted' }, 'Use a broker user with a management tag. ',
        'Credentials stay in this browser tab only.')));
}
