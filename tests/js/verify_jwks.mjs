// Verifies a JWT the way a Node service would: jose fetches the tenant's
// JWKS itself and checks signature, issuer and audience.
//
//   node verify_jwks.mjs <jwks url> <issuer> <audience> < token
//
// Prints {"kid": …, "claims": {…}} and exits 0, or prints why and exits 1.
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { readFileSync } from 'node:fs';

const [url, issuer, audience] = process.argv.slice(2);
const token = readFileSync(0, 'utf8').trim();
try {
  const jwks = createRemoteJWKSet(new URL(url));
  const { payload, protectedHeader } = await jwtVerify(token, jwks, { issuer, audience });
  console.log(JSON.stringify({ kid: protectedHeader.kid, claims: payload }));
} catch (error) {
  console.log(`refused: ${error.code ?? error.name}: ${error.message}`);
  process.exit(1);
}
