// The OIDC provider flowprobe's tests and demo log in against: the npm `oidc-provider` on
// 127.0.0.1, with an account store that really checks passwords, a login and consent UI shaped
// like oidc-provider's development interactions, client_credentials, refresh tokens, JWT access
// tokens for configured resource indicators, a password grant, and signing keys read from a
// JWKS file (a new file on restart = rotated keys).
//
// Usage: node server.mjs CONFIG.json      (the port may also come from IDP_PORT)
//
// CONFIG.json:
// {
//   "port": 4000,
//   "jwks_file": "/tmp/x/jwks.json",       // private JWKS; generated (one RSA key) when absent
//   "clients": [{"client_id": "...", "client_secret": "...", "redirect_uris": [...], ...}],
//   "users": [{"login": "alice", "password": "...", "email": "...", "name": "..."}],
//   "resources": {"urn:flowprobe:api": {"scope": "api:read", "ttl": 600}},
//   "ui": "dev"                              // or "django": see the login and consent pages below
// }
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';

const configPath = process.argv[2] ?? process.env.IDP_CONFIG;
if (!configPath) {
  console.error('usage: node server.mjs CONFIG.json');
  process.exit(2);
}
const config = JSON.parse(readFileSync(configPath, 'utf8'));
const port = Number(process.env.IDP_PORT ?? config.port);
const host = '127.0.0.1';
const issuer = `http://${host}:${port}`;

// ---- signing keys: read the JWKS file, or create it with one fresh RSA key -------------------
async function loadKeys(file) {
  if (file && existsSync(file)) {
    return JSON.parse(readFileSync(file, 'utf8'));
  }
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  const jwks = { keys: [{ ...jwk, kid: `k-${randomUUID().slice(0, 8)}`, alg: 'RS256', use: 'sig' }] };
  if (file) writeFileSync(file, JSON.stringify(jwks), { mode: 0o600 });
  return jwks;
}
const jwks = await loadKeys(config.jwks_file);

// ---- accounts: passwords are really checked -------------------------------------------------
const users = new Map((config.users ?? []).map((u) => [u.login, u]));

function checkPassword(login, password) {
  const user = users.get(login);
  // Every user needs a non-empty password; nothing else gets in.
  if (!user || typeof password !== 'string' || !user.password || user.password !== password) {
    return undefined;
  }
  return user;
}

function account(login) {
  const user = users.get(login);
  if (!user) return undefined;
  return {
    accountId: login,
    async claims() {
      return {
        sub: login,
        email: user.email ?? `${login}@example.test`,
        email_verified: true,
        name: user.name ?? login,
        preferred_username: login,
      };
    },
  };
}

// ---- resource servers (JWT access tokens with an audience) ----------------------------------
const resources = config.resources ?? {};

const provider = new Provider(issuer, {
  clients: config.clients ?? [],
  jwks,
  // Resource servers' scopes are scopes the clients may be registered with.
  scopes: ['openid', 'offline_access', 'profile', 'email',
    ...Object.values(resources).flatMap((rs) => (rs.scope ?? 'api:read').split(' '))],
  cookies: { keys: [randomBytes(32).toString('hex')] },
  findAccount: async (_ctx, id) => account(id),
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
  },
  // Profile and email claims go into the ID token too, so `claim "email"` can be asserted.
  conformIdTokenClaims: false,
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    userinfo: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, indicator) => {
        const rs = resources[indicator];
        if (!rs) throw new errors.InvalidTarget(`unknown resource ${indicator}`);
        return {
          scope: rs.scope ?? 'api:read',
          audience: indicator,
          accessTokenTTL: rs.ttl ?? 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  // A refresh token whenever the client may use the refresh_token grant.
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  pkce: { required: () => true },
  ttl: {
    AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? 600,
    AuthorizationCode: 60,
    ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? 600,
    IdToken: 600,
    Interaction: 600,
    Grant: 3600,
    RefreshToken: 86400,
    Session: 3600,
  },
  renderError: async (ctx, out) => {
    ctx.type = 'html';
    ctx.body = page('Error', `<h1>oops! something went wrong</h1><pre class="error">${esc(
      Object.entries(out).map(([k, v]) => `${k}: ${v}`).join('\n'),
    )}</pre>`);
  },
});

// ---- password grant (RFC 6749 4.3), for `flow: password` -------------------------------------
provider.registerGrantType('password', async (ctx) => {
  const { username, password } = ctx.oidc.params;
  const user = checkPassword(username, password);
  if (!user) throw new errors.InvalidGrant('invalid username or password');
  const { client } = ctx.oidc;
  const requested = new Set(String(ctx.oidc.params.scope ?? 'openid').split(' ').filter(Boolean));
  const allowed = new Set(String(client.scope ?? 'openid offline_access profile email').split(' '));
  const scope = [...requested].filter((s) => allowed.has(s) || ['openid', 'offline_access', 'profile', 'email'].includes(s)).join(' ');

  const grant = new provider.Grant({ accountId: username, clientId: client.clientId });
  grant.addOIDCScope(scope);
  const grantId = await grant.save();

  const at = new provider.AccessToken({
    accountId: username, client, grantId, gty: 'password', scope,
  });
  const accessToken = await at.save();

  let refreshToken;
  if (client.grantTypeAllowed('refresh_token')) {
    const rt = new provider.RefreshToken({
      accountId: username,
      client,
      grantId,
      gty: 'password',
      scope,
      authTime: Math.floor(Date.now() / 1000),
      rotations: 0,
    });
    refreshToken = await rt.save();
  }

  let idToken;
  if (requested.has('openid')) {
    const claims = await account(username).claims();
    const token = new provider.IdToken({ ...claims, auth_time: Math.floor(Date.now() / 1000) }, { ctx });
    token.scope = scope;
    idToken = await token.issue({ use: 'idtoken' });
  }

  ctx.body = {
    access_token: accessToken,
    expires_in: at.expiration,
    token_type: at.tokenType,
    id_token: idToken,
    refresh_token: refreshToken,
    scope,
  };
}, ['username', 'password', 'scope']);

// ---- login and consent pages -----------------------------------------------------------------
// "dev" (default): shaped like oidc-provider's development interactions (hidden `prompt` input).
// "django": shaped like a Django-based IdP: `username`/`password` fields, a CSRF token that is
// checked, errors in `<ul class="errorlist">` (echoing the password typed, as a careless
// template might), and a consent form (same `method=post` as the login form, no `action`)
// whose first submit button is Cancel, then Allow and Deny buttons; Cancel and Deny refuse.
const ui = config.ui ?? 'dev';
function esc(s) {
  return String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

function page(title, body) {
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${esc(title)}</title></head>
<body><div class="container"><h1>${esc(title)}</h1>
${body}
</div></body></html>`;
}

function loginPage(uid, loginHint, error) {
  return page('Sign-in', `${error ? `<p class="error" role="alert">${esc(error)}</p>\n` : ''}<form autocomplete="off" action="/interaction/${esc(uid)}" method="post">
  <input type="hidden" name="prompt" value="login"/>
  <input required type="text" name="login" placeholder="Enter any login" autofocus="on" value="${esc(loginHint)}" >
  <input required type="password" name="password" placeholder="and password" >
  <button type="submit" class="login login-submit">Sign-in</button>
</form>`);
}

function consentPage(uid, details) {
  const scopes = (details.missingOIDCScope ?? []).map((s) => `<li>${esc(s)}</li>`).join('');
  const rs = Object.entries(details.missingResourceScopes ?? {}).map(([k, v]) => `<li>${esc(k)}: ${esc(v.join(' '))}</li>`).join('');
  return page('Authorize', `<ul>${scopes}${rs}</ul>
<form autocomplete="off" action="/interaction/${esc(uid)}" method="post">
  <input type="hidden" name="prompt" value="consent"/>
  <button autofocus type="submit" class="login login-submit">Continue</button>
</form>`);
}

async function readForm(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function sendHtml(res, status, html) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(html);
}

// Django UI: the CSRF token of each interaction's form.
const csrfTokens = new Map();
function csrfToken(uid) {
  if (!csrfTokens.has(uid)) csrfTokens.set(uid, randomBytes(16).toString('hex'));
  return csrfTokens.get(uid);
}

function djangoLoginPage(uid, username, error) {
  const errors = error ? `<ul class="errorlist nonfield"><li>${esc(error)}</li></ul>\n` : '';
  return page('Log in', `<form method="post" action="/interaction/${esc(uid)}">
  <input type="hidden" name="csrfmiddlewaretoken" value="${csrfToken(uid)}">
  ${errors}<p><label for="id_username">Username:</label> <input type="text" name="username" autofocus maxlength="150" required id="id_username" value="${esc(username)}"></p>
  <p><label for="id_password">Password:</label> <input type="password" name="password" required id="id_password"></p>
  <input type="submit" value="Log in">
</form>`);
}

function djangoConsentPage(uid, details) {
  const scopes = (details.missingOIDCScope ?? []).map((s) => `<li>${esc(s)}</li>`).join('');
  return page('Authorize', `<p>The application asks for:</p><ul>${scopes}</ul>
<form method="post">
  <input type="hidden" name="csrfmiddlewaretoken" value="${csrfToken(uid)}">
  <input type="submit" name="cancel" value="Cancel">
  <button type="submit" name="allow" value="yes">Allow</button>
  <button type="submit" name="deny" value="no">Deny</button>
</form>`);
}

// Grants what the consent prompt asks for and finishes the interaction.
async function grantConsent(req, res, details) {
  const { grantId, prompt, params, session } = details;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const d = prompt.details;
  if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
  if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
  for (const [indicator, scope] of Object.entries(d.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scope.join(' '));
  }
  const result = { consent: { grantId: await grant.save() } };
  return provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
}

async function djangoInteraction(req, res, details) {
  const { uid, prompt, params } = details;
  if (req.method === 'GET') {
    if (prompt.name === 'login') return sendHtml(res, 200, djangoLoginPage(uid, params.login_hint));
    if (prompt.name === 'consent') return sendHtml(res, 200, djangoConsentPage(uid, prompt.details));
    return sendHtml(res, 501, page('Error', `<p class="error">prompt ${esc(prompt.name)} not implemented</p>`));
  }
  const form = await readForm(req);
  if (form.get('csrfmiddlewaretoken') !== csrfTokens.get(uid)) {
    return sendHtml(res, 403, page('Forbidden', '<p>CSRF verification failed. Request aborted.</p>'));
  }
  if (prompt.name === 'login') {
    const user = checkPassword(form.get('username'), form.get('password'));
    if (!user) {
      const typed = form.get('password') ?? '';
      return sendHtml(res, 200, djangoLoginPage(uid, form.get('username'),
        `Please enter a correct username and password (the password you entered, ${typed}, is not it).`));
    }
    csrfTokens.delete(uid);
    return provider.interactionFinished(req, res, { login: { accountId: user.login } }, { mergeWithLastSubmission: false });
  }
  if (prompt.name === 'consent') {
    csrfTokens.delete(uid);
    if (form.get('allow') === 'yes' && !form.has('cancel') && !form.has('deny')) {
      return grantConsent(req, res, details);
    }
    const refused = { error: 'access_denied', error_description: 'the user did not allow the application' };
    return provider.interactionFinished(req, res, refused, { mergeWithLastSubmission: false });
  }
  return sendHtml(res, 400, page('Error', '<p class="error">unexpected form submission</p>'));
}

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  if (ui === 'django') return djangoInteraction(req, res, details);
  const { uid, prompt, params } = details;
  if (req.method === 'GET') {
    if (prompt.name === 'login') return sendHtml(res, 200, loginPage(uid, params.login_hint));
    if (prompt.name === 'consent') return sendHtml(res, 200, consentPage(uid, prompt.details));
    return sendHtml(res, 501, page('Error', `<p class="error">prompt ${esc(prompt.name)} not implemented</p>`));
  }
  const form = await readForm(req);
  if (form.get('prompt') === 'login' && prompt.name === 'login') {
    const user = checkPassword(form.get('login'), form.get('password'));
    if (!user) {
      // Like real IdPs: the same form again, with a message, and no session.
      return sendHtml(res, 200, loginPage(uid, form.get('login'), 'Invalid login or password.'));
    }
    return provider.interactionFinished(req, res, { login: { accountId: user.login } }, { mergeWithLastSubmission: false });
  }
  if (form.get('prompt') === 'consent' && prompt.name === 'consent') {
    return grantConsent(req, res, details);
  }
  return sendHtml(res, 400, page('Error', '<p class="error">unexpected form submission</p>'));
}

// ---- HTTP server: interactions here, everything else to the provider; one log line a request
const handler = provider.callback();
const server = createServer(async (req, res) => {
  const path = (req.url ?? '/').split('?')[0];
  res.on('finish', () => console.log(`${req.method} ${path} ${res.statusCode}`));
  try {
    if (path.startsWith('/interaction/')) {
      await interaction(req, res);
    } else {
      handler(req, res);
    }
  } catch (err) {
    console.error(`error on ${req.method} ${path}: ${err?.message ?? err}`);
    if (!res.headersSent) sendHtml(res, err?.statusCode ?? 500, page('Error', `<p class="error">${esc(err?.message ?? 'error')}</p>`));
  }
});
server.listen(port, host, () => {
  console.log(`idp listening on ${issuer} kid=${jwks.keys.map((k) => k.kid).join(',')}`);
});
// Stopped by PID: exit at once, dropping open keep-alive connections.
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.closeAllConnections();
    process.exit(0);
  });
}
