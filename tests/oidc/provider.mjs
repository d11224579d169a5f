// A real OpenID Connect provider (the `oidc-provider` package) for the single sign-on
// test, crates/telltale/tests/it/sso.rs. Not a stub: discovery, the JWKS, the
// authorization code flow with PKCE and the token endpoint are the package's own. What
// this script adds: one registered client, two test users with a `groups` claim, a login
// form that signs a user in and grants the requested scopes in one POST, and switches for
// the failure cases the test tries.
//
//   node provider.mjs --port 0 --client-id telltale --client-secret S \
//        --redirect-uri http://127.0.0.1:PORT/auth/callback
//        [--id-token-ttl SECONDS]          ID token lifetime (default 3600)
//        [--clock-skew=SECONDS]            the provider's clock runs this far off (e.g.
//                                          -600 with --id-token-ttl 60: every ID token
//                                          it issues has expired 9 minutes ago)
//        [--publish-other-key]             the JWKS endpoint publishes another RSA key
//                                          under the signing key's kid (a bad signature)
//        [--audience ID]                   ID tokens name this audience instead of the
//                                          client's ID (a wrong audience)
//
// The first line on stdout is the issuer URL, once the port is open.
//
// Users: `ada` (groups telltale-admins, telltale-readers), `rob` (telltale-readers),
// `eve` (no group). Sign in: POST /interaction/<uid> with `login=<user>`.

import * as crypto from 'node:crypto';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'client-id': { type: 'string' },
    'client-secret': { type: 'string' },
    'redirect-uri': { type: 'string' },
    'id-token-ttl': { type: 'string', default: '3600' },
    'clock-skew': { type: 'string', default: '0' },
    'publish-other-key': { type: 'boolean', default: false },
    audience: { type: 'string' },
  },
});
for (const required of ['client-id', 'client-secret', 'redirect-uri']) {
  if (!args[required]) {
    console.error(`provider.mjs: --${required} is required`);
    process.exit(2);
  }
}

// The provider's clock (every `iat`/`exp` it writes comes from Date.now()).
const skewMs = Number(args['clock-skew']) * 1000;
if (skewMs) {
  const realNow = Date.now;
  Date.now = () => realNow() + skewMs;
}

const ACCOUNTS = {
  ada: { name: 'Ada Admin', email: 'ada@example.test', groups: ['telltale-admins', 'telltale-readers'] },
  rob: { name: 'Rob Reader', email: 'rob@example.test', groups: ['telltale-readers'] },
  eve: { name: 'Eve Nobody', email: 'eve@example.test', groups: [] },
};

function rsaJwk(kid) {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' };
}
const signingKey = rsaJwk('signing-key-1');
// The same kid on a key the provider never signs with.
const otherKey = rsaJwk('signing-key-1');
const publicPart = ({ kty, n, e, kid, use, alg }) => ({ kty, n, e, kid, use, alg });

const server = http.createServer();
await new Promise((resolve) => server.listen(Number(args.port), '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: args['client-id'],
    client_secret: args['client-secret'],
    redirect_uris: [args['redirect-uri']],
    // A loopback http redirect (the test's telltale): a native client, whose redirect
    // may use any port (RFC 8252 7.3), so the provider starts before telltale picks one.
    application_type: args['redirect-uri'].startsWith('http://127.0.0.1') ? 'native' : 'web',
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [signingKey] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email'],
    groups: ['groups'],
  },
  scopes: ['openid', 'profile', 'email', 'groups'],
  // Put the scopes' claims (groups) in the ID token, as Keycloak's mappers do.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  ttl: { IdToken: Number(args['id-token-ttl']) },
  async findAccount(ctx, id) {
    const account = ACCOUNTS[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, ...account };
      },
    };
  },
});

if (args.audience) {
  // Every ID token names another audience: the client object the token is signed for
  // answers `clientId` with --audience (its methods keep their own `this`).
  const issue = provider.IdToken.prototype.issue;
  provider.IdToken.prototype.issue = function patched(options) {
    const client = this.client;
    this.client = new Proxy(client, {
      get(target, prop) {
        if (prop === 'clientId') return args.audience;
        const value = Reflect.get(target, prop, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    return issue.call(this, options);
  };
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
}

async function interaction(req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  if (req.method === 'GET') {
    res.setHeader('content-type', 'text/html; charset=utf-8');
    res.end(`<form method="post" action="/interaction/${uid}">
<input name="login"><button>Sign in</button></form>`);
    return;
  }
  const form = await readForm(req);
  const accountId = form.get('login');
  if (!ACCOUNTS[accountId]) {
    res.statusCode = 403;
    res.end(`no such user: ${accountId}\n`);
    return;
  }
  const grant = new provider.Grant({ accountId, clientId: details.params.client_id });
  grant.addOIDCScope(details.params.scope);
  const grantId = await grant.save();
  await provider.interactionFinished(
    req,
    res,
    { login: { accountId }, consent: { grantId } },
    { mergeWithLastSubmission: false },
  );
}

const callback = provider.callback();
server.on('request', async (req, res) => {
  try {
    const url = new URL(req.url, issuer);
    if (url.pathname === '/jwks' && args['publish-other-key']) {
      res.setHeader('content-type', 'application/jwk-set+json');
      res.end(JSON.stringify({ keys: [publicPart(otherKey)] }));
      return;
    }
    const m = url.pathname.match(/^\/interaction\/([^/]+)$/);
    if (m) {
      await interaction(req, res, m[1]);
      return;
    }
    callback(req, res);
  } catch (err) {
    res.statusCode = 500;
    res.end(`provider.mjs: ${err.stack}\n`);
  }
});

process.stdout.write(`${issuer}\n`);
process.on('SIGTERM', () => server.close(() => process.exit(0)));
