import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair, type JWTPayload } from 'jose';

/**
 * A stand-in OpenID Connect provider: what a relay needs of a real one (a discovery document
 * at /.well-known/openid-configuration naming a jwks_uri, and a JWKS with real RS256 keys),
 * and a way for the test to mint ID tokens as the provider's login would.
 */
export interface StandInProvider extends AsyncDisposable {
  issuer: string;
  clientId: string;
  idToken(
    claims: JWTPayload & { email?: string; email_verified?: boolean },
    options?: { audience?: string; expiresIn?: string },
  ): Promise<string>;
  /** A token signed by a key the provider never published (a forger's). */
  forgedToken(claims: JWTPayload): Promise<string>;
}

export async function startStandInProvider(clientId = 'hangar-relay-test'): Promise<StandInProvider> {
  const { privateKey, publicKey } = await generateKeyPair('RS256');
  const forger = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'key-1', alg: 'RS256', use: 'sig' };
  let issuer = '';
  const server: Server = createServer((request, response) => {
    if (request.url === '/.well-known/openid-configuration') {
      response.setHeader('content-type', 'application/json');
      response.end(
        JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks`, id_token_signing_alg_values_supported: ['RS256'] }),
      );
    } else if (request.url === '/jwks') {
      response.setHeader('content-type', 'application/json');
      response.end(JSON.stringify({ keys: [jwk] }));
    } else {
      response.statusCode = 404;
      response.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const mint = (key: CryptoKey | import('jose').KeyObject, claims: JWTPayload, audience: string, expiresIn: string) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: 'key-1' })
      .setIssuer(issuer)
      .setAudience(audience)
      .setIssuedAt()
      .setExpirationTime(expiresIn)
      .sign(key);
  return {
    issuer,
    clientId,
    idToken: (claims, options = {}) =>
      mint(privateKey, claims, options.audience ?? clientId, options.expiresIn ?? '5m'),
    forgedToken: (claims) => mint(forger.privateKey, claims, clientId, '5m'),
    [Symbol.asyncDispose]: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
