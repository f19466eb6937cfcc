// A real OpenID provider (npm package oidc-provider 8) on loopback, for the hospital
// sign-in tests. One confidential client, PKCE (S256) required, one account whose claims
// the test chooses, sign-in and consent completed without a form.
//
// Environment: OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_REDIRECT_URI (required);
// OIDC_PORT (default 0: any free port).
// Prints one line when it serves: {"ready": true, "issuer": "http://127.0.0.1:<port>"}.
//
// Test switches (loopback only, outside the OpenID protocol):
//   POST /test/account  {"sub": "...", "claims": {...}}   the account the next sign-in uses
//   POST /test/next-token {"mode": "tamper" | "audience" | "nonce" | "issuer" | "none"}
//        alters the ID token of the next token response only: "tamper" changes a claim
//        and keeps the old signature; "audience", "nonce" and "issuer" re-sign (same key)
//        a token for another audience, with another nonce or from another issuer.
import http from 'node:http';

import { CompactSign, exportJWK, generateKeyPair, importJWK } from 'jose';
import Provider from 'oidc-provider';

const clientId = process.env.OIDC_CLIENT_ID;
const clientSecret = process.env.OIDC_CLIENT_SECRET;
const redirectUri = process.env.OIDC_REDIRECT_URI;
if (!clientId || !clientSecret || !redirectUri) {
  process.stderr.write('Set OIDC_CLIENT_ID, OIDC_CLIENT_SECRET and OIDC_REDIRECT_URI.\n');
  process.exit(2);
}

let account = { sub: 'clinician-1', claims: { name: 'Dr Test', groups: ['neurology'] } };
let nextTokenMode = 'none';

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const privateJwk = { ...(await exportJWK(privateKey)), kid: 'test-key', alg: 'RS256', use: 'sig' };
const signingKey = await importJWK(privateJwk, 'RS256');

function b64json(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

async function alterIdToken(idToken, mode) {
  const [header, payload, signature] = idToken.split('.');
  const claims = b64json(payload);
  if (mode === 'tamper') {
    claims.sub = `${claims.sub}-tampered`;
    const forged = Buffer.from(JSON.stringify(claims)).toString('base64url');
    return `${header}.${forged}.${signature}`;
  }
  if (mode === 'audience') claims.aud = 'another-client';
  if (mode === 'nonce') claims.nonce = 'not-the-nonce-that-was-sent';
  if (mode === 'issuer') claims.iss = 'https://another-provider.example';
  return new CompactSign(Buffer.from(JSON.stringify(claims)))
    .setProtectedHeader(b64json(header))
    .sign(signingKey);
}

function readJson(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      try { resolve(body ? JSON.parse(body) : {}); } catch (err) { reject(err); }
    });
  });
}

const server = http.createServer();
await new Promise((resolve) => server.listen(Number(process.env.OIDC_PORT || 0), '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [privateJwk] },
  pkce: { methods: ['S256'], required: () => true },
  claims: { openid: ['sub'], profile: ['name', 'preferred_username'], groups: ['groups', 'department'] },
  conformIdTokenClaims: false,
  cookies: { keys: ['neurogate-test-provider-cookie-key'] },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({ sub: id, ...(id === account.sub ? account.claims : {}) }),
  }),
});
provider.proxy = false;

provider.use(async (ctx, next) => {
  await next();
  if (ctx.path === '/token' && ctx.status === 200 && ctx.body && ctx.body.id_token
      && nextTokenMode !== 'none') {
    const mode = nextTokenMode;
    nextTokenMode = 'none';
    ctx.body = { ...ctx.body, id_token: await alterIdToken(ctx.body.id_token, mode) };
  }
});

const callback = provider.callback();
server.on('request', async (req, res) => {
  try {
    const path = req.url.split('?')[0];
    if (req.method === 'POST' && path === '/test/account') {
      account = await readJson(req);
      res.writeHead(204).end();
      return;
    }
    if (req.method === 'POST' && path === '/test/next-token') {
      nextTokenMode = (await readJson(req)).mode;
      res.writeHead(204).end();
      return;
    }
    if (req.method === 'GET' && path.startsWith('/interaction/')) {
      const details = await provider.interactionDetails(req, res);
      const grant = new provider.Grant({ accountId: account.sub, clientId: details.params.client_id });
      grant.addOIDCScope(details.params.scope);
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, {
        login: { accountId: account.sub },
        consent: { grantId },
      }, { mergeWithLastSubmission: false });
      return;
    }
    callback(req, res);
  } catch (err) {
    res.writeHead(500, { 'content-type': 'text/plain' }).end(String(err));
  }
});

process.stdout.write(`${JSON.stringify({ ready: true, issuer })}\n`);
process.on('SIGTERM', () => server.close(() => process.exit(0)));
