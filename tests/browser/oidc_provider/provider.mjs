// A real OpenID provider (panva/oidc-provider, OpenID Certified) on loopback for the sign-in
// tests. Its development login form accepts any login: the login typed is the account's email.
// Usage: node provider.mjs PORT CONFIG_JSON   (prints "ready" once it listens)
import Provider from 'oidc-provider';

const [port, configJson] = process.argv.slice(2);
const options = JSON.parse(configJson);

function claimsOf(login) {
  return {
    sub: login,
    email: login,
    email_verified: !login.startsWith('unverified'),
    name: login.split('@')[0],
    groups: login.startsWith('boss') ? ['llavero-admins'] : ['staff'],
  };
}

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: options.clients.map((client) => ({
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    ...client,
  })),
  pkce: { required: () => true },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  findAccount: (ctx, id) => ({ accountId: id, claims: () => claimsOf(id) }),
  ttl: { IdToken: 3600 },
  cookies: { keys: ['llavero-test-provider-cookie-key'] },
  features: { devInteractions: { enabled: true } },
});
provider.proxy = false;

// `token_clock_offset` (seconds) mints tokens as if the token endpoint's clock were that far
// off: a negative offset gives ID tokens that had already expired when they were issued.
const offset = Number(options.token_clock_offset ?? 0) * 1000;
const realNow = Date.now;
provider.use(async (ctx, next) => {
  if (!offset || ctx.path !== '/token') return next();
  Date.now = () => realNow() + offset;
  try { await next(); } finally { Date.now = realNow; }
});
provider.listen(Number(port), '127.0.0.1', () => console.log('ready'));
