// A real OpenID Connect provider (the oidc-provider package) on a loopback port, for the tests.
//
// Run as: node provider.mjs <node_modules dir> <config JSON>
// The config names the one client ({client_id, client_secret, redirect_uris,
// post_logout_redirect_uris}), the token endpoint's auth methods, whether the ID
// token carries the scope claims (else they are served only by UserInfo, as most
// providers do for the code flow) and whether RP-initiated logout is offered.
//
// Sign-in uses the package's development pages: any login and password; the
// login names an account whose claims the tests set through the admin routes:
//   POST /admin/accounts   {"<login>": {"email": …, "email_verified": …, "groups": […]}}
//   POST /admin/rotate     a new signing key replaces the old one (the JWKS changes)
//   POST /admin/tamper     {"mode": "foreign"|"aud"|"iss"|"expired"|"nonce"}: the next
//                          token response carries an ID token spoiled that way
// Its pages load nothing from outside loopback. Prints "READY <port>" once it
// listens; stops on SIGTERM.

import { createServer } from 'node:http';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [modulesDir, configText] = process.argv.slice(2);
const config = JSON.parse(configText);
const load = (name, entry) => import(pathToFileURL(join(modulesDir, name, entry)).href);
const { default: Provider } = await load('oidc-provider', 'lib/index.js');
const jose = await load('jose', 'dist/webapi/index.js');

const accounts = new Map();
let tamperNext = null;

function newSigningKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };
}

let signingKey = newSigningKey();

async function findAccount(ctx, id) {
  return {
    accountId: id,
    async claims() {
      return { sub: id, ...(accounts.get(id) ?? {}) };
    },
  };
}

function build(key) {
  const provider = new Provider(config.issuer, {
    clients: [{
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: config.token_endpoint_auth_method ?? 'client_secret_basic',
      ...config.client,
    }],
    clientAuthMethods: config.client_auth_methods ?? ['client_secret_basic', 'client_secret_post'],
    jwks: { keys: [key] },
    cookies: { keys: ['modelgates-test-cookie-key'] },
    findAccount,
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    scopes: ['openid', 'email', 'profile', 'groups'],
    conformIdTokenClaims: !config.claims_in_id_token,
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: config.end_session !== false },
    },
  });
  provider.proxy = false;
  provider.use(localOnly);
  provider.use(spoilIdToken);
  return provider;
}

// The package's development pages import a web font; the tests stay on loopback.
async function localOnly(ctx, next) {
  await next();
  if (typeof ctx.body === 'string' && ctx.body.includes('@import url(https:')) {
    ctx.body = ctx.body.replace(/@import url\(https:[^)]*\);?/g, '');
  }
}

async function spoilIdToken(ctx, next) {
  await next();
  if (!tamperNext || !ctx.path.endsWith('/token') || ctx.status !== 200 || !ctx.body?.id_token) {
    return;
  }
  const mode = tamperNext;
  tamperNext = null;
  const claims = jose.decodeJwt(ctx.body.id_token);
  const now = Math.floor(Date.now() / 1000);
  let key = signingKey;
  if (mode === 'aud') claims.aud = 'another-client';
  else if (mode === 'iss') claims.iss = 'http://127.0.0.1:1/another-issuer';
  else if (mode === 'expired') Object.assign(claims, { iat: now - 3600, exp: now - 1800 });
  else if (mode === 'nonce') claims.nonce = 'not-the-nonce-that-was-sent';
  else if (mode === 'foreign') key = { ...newSigningKey(), kid: signingKey.kid };
  const privateKey = await jose.importJWK(key, 'RS256');
  ctx.body = {
    ...ctx.body,
    id_token: await new jose.SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: key.kid })
      .sign(privateKey),
  };
}

let provider = build(signingKey);
let handle = provider.callback();

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {};
}

async function admin(req, res) {
  const body = await readJson(req);
  if (req.url === '/admin/accounts') {
    for (const [login, claims] of Object.entries(body)) accounts.set(login, claims);
  } else if (req.url === '/admin/rotate') {
    signingKey = newSigningKey();
    provider = build(signingKey); // the in-memory grants and sessions are shared
    handle = provider.callback();
  } else if (req.url === '/admin/tamper') {
    tamperNext = body.mode;
  } else {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ kid: signingKey.kid }));
}

const server = createServer((req, res) => {
  if (req.method === 'POST' && req.url.startsWith('/admin/')) {
    admin(req, res).catch((err) => res.writeHead(500).end(String(err)));
  } else {
    handle(req, res);
  }
});
server.listen(config.port, '127.0.0.1', () => {
  process.stdout.write(`READY ${server.address().port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
