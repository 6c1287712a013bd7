import { createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { HangarError } from '@hangar/shared';

/**
 * Sign-in with an OpenID Connect provider: the ID token is verified against the issuer's
 * keys (discovery document → jwks_uri, fetched and cached by jose), its `iss` and `aud`
 * (= --oidc-client-id) must match, and the email must be verified.
 */
export interface OidcConfig {
  issuer: string;
  clientId: string;
}

export interface OidcIdentity {
  issuer: string;
  subject: string;
  email: string;
}

export class OidcVerifier {
  private keys: Promise<{ issuer: string; jwks: JWTVerifyGetKey }> | undefined;

  constructor(
    readonly config: OidcConfig,
    private readonly now: () => number,
  ) {}

  private discover(): Promise<{ issuer: string; jwks: JWTVerifyGetKey }> {
    this.keys ??= (async () => {
      const url = `${this.config.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
      const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
      if (!response.ok) throw new HangarError('E_AUTH_OIDC', `${url} answered HTTP ${response.status}`);
      const document = (await response.json()) as { issuer?: unknown; jwks_uri?: unknown };
      if (typeof document.issuer !== 'string' || typeof document.jwks_uri !== 'string') {
        throw new HangarError('E_AUTH_OIDC', `${url} has no issuer or jwks_uri`);
      }
      return { issuer: document.issuer, jwks: createRemoteJWKSet(new URL(document.jwks_uri)) };
    })().catch((error: unknown) => {
      this.keys = undefined; // try discovery again on the next sign-in
      const reason = error instanceof Error ? error.message : String(error);
      throw new HangarError('E_UNAVAILABLE', `the sign-in provider ${this.config.issuer} is unreachable: ${reason}`);
    });
    return this.keys;
  }

  async verify(idToken: string): Promise<OidcIdentity> {
    const { issuer, jwks } = await this.discover();
    let payload;
    try {
      ({ payload } = await jwtVerify(idToken, jwks, {
        issuer,
        audience: this.config.clientId,
        currentDate: new Date(this.now()),
      }));
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new HangarError('E_AUTH_OIDC', `the sign-in provider's ID token was refused: ${reason}`);
    }
    if (typeof payload.sub !== 'string' || typeof payload['email'] !== 'string') {
      throw new HangarError(
        'E_AUTH_OIDC',
        'the ID token has no subject or email; ask the provider for the email scope',
      );
    }
    if (payload['email_verified'] !== true) {
      throw new HangarError('E_AUTH_OIDC', `the provider has not verified ${payload['email']}; verify it there first`);
    }
    return { issuer, subject: payload.sub, email: payload['email'].toLowerCase() };
  }
}
