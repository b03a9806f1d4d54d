// An OpenID Connect provider for the end-to-end tests: npm oidc-provider 8 on
// 127.0.0.1, issuing RS256 JWT access tokens (typ at+jwt) to clients that use
// the client-credentials grant.
//
// Usage: node oidc_server.mjs [CONFIG_JSON]
//
// CONFIG_JSON (all optional):
//   {
//     "clients": [{"client_id": "...", "client_secret": "...",
//                  "claims": {"groups": ["sensors"]}}],
//     "resource": "urn:mqttauth:broker",   // resource indicator and "aud"
//     "accessTokenTTL": 300                // seconds
//   }
// A client's "claims" are added to every access token issued to it.
//
// Once listening, one JSON line goes to standard output:
//   {"issuer": "http://127.0.0.1:PORT", "admin": "http://127.0.0.1:PORT/admin",
//    "kid": "<signing kid>"}
// Admin endpoints, for the test to drive:
//   POST /admin/rotate   new RSA signing key; the old keys stay published
//                        (pass ?retire=1 to drop them); returns {"kid", "kids"}
//   GET  /admin/stats    {"jwks_requests": N}: GET requests served on jwks_uri
// The process exits when standard input closes, so a test that dies leaves
// no provider behind.

import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import process from 'node:process';

import Provider from 'oidc-provider';

const DEFAULT_CONFIG = {
  clients: [{ client_id: 'mqtt-device', client_secret: 'mqtt-device-secret', claims: {} }],
  resource: 'urn:mqttauth:broker',
  accessTokenTTL: 300,
};
const JWKS_PATH = '/jwks';
const SCOPE = 'mqtt';

const config = { ...DEFAULT_CONFIG, ...(process.argv[2] ? JSON.parse(process.argv[2]) : {}) };
const claimsByClient = new Map(config.clients.map((client) => [client.client_id, client.claims || {}]));

function generateSigningKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };
}

function buildProvider(issuer, keys) {
  const resourceServer = {
    scope: SCOPE,
    audience: config.resource,
    accessTokenTTL: config.accessTokenTTL,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
  };
  const provider = new Provider(issuer, {
    clients: config.clients.map((client) => ({
      client_id: client.client_id,
      client_secret: client.client_secret,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
    })),
    jwks: { keys },
    cookies: { keys: [randomUUID()] },
    routes: { jwks: JWKS_PATH },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => config.resource,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resourceIndicator) => {
          if (resourceIndicator !== config.resource) {
            throw new Provider.errors.InvalidTarget();
          }
          return resourceServer;
        },
      },
    },
    extraTokenClaims: (ctx, token) => claimsByClient.get(token.clientId),
  });
  provider.on('server_error', (ctx, error) => console.error('server_error', error));
  return provider;
}

let keys = [generateSigningKey()];
let handle = null;
let jwksRequests = 0;

function sendJson(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function serveAdmin(req, res, url, issuer) {
  if (req.method === 'POST' && url.pathname === '/admin/rotate') {
    const fresh = generateSigningKey();
    keys = url.searchParams.get('retire') ? [fresh] : [fresh, ...keys];
    handle = buildProvider(issuer, keys).callback();
    sendJson(res, 200, { kid: fresh.kid, kids: keys.map((key) => key.kid) });
  } else if (req.method === 'GET' && url.pathname === '/admin/stats') {
    sendJson(res, 200, { jwks_requests: jwksRequests });
  } else {
    sendJson(res, 404, { error: 'not_found' });
  }
}

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  handle = buildProvider(issuer, keys).callback();
  server.on('request', (req, res) => {
    const url = new URL(req.url, issuer);
    if (url.pathname.startsWith('/admin/')) {
      serveAdmin(req, res, url, issuer);
      return;
    }
    if (req.method === 'GET' && url.pathname === JWKS_PATH) {
      jwksRequests += 1;
    }
    handle(req, res);
  });
  process.stdout.write(`${JSON.stringify({ issuer, admin: `${issuer}/admin`, kid: keys[0].kid })}\n`);
});

process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
