import type { ErrorCode } from '@hangar/shared';

/** The HTTP status each error code is answered with (the body always carries the code). */
export function httpStatus(code: ErrorCode): number {
  switch (code) {
    case 'E_BAD_REQUEST':
    case 'E_PROTOCOL':
      return 400;
    case 'E_AUTH_REQUIRED':
    case 'E_AUTH_EXPIRED':
    case 'E_AUTH_BAD_CREDENTIALS':
    case 'E_AUTH_REFRESH_REUSED':
    case 'E_AUTH_BAD_SIGNATURE':
    case 'E_AUTH_OIDC':
    case 'E_TOKEN_INVALID':
      return 401;
    case 'E_AUTH_DEVICE_REVOKED':
    case 'E_FORBIDDEN':
      return 403;
    case 'E_NOT_FOUND':
    case 'E_HOST_NOT_FOUND':
      return 404;
    case 'E_EXISTS':
    case 'E_TOKEN_USED':
    case 'E_HOST_OTHER_ACCOUNT':
    case 'E_HOST_OFFLINE':
      return 409;
    case 'E_TOKEN_EXPIRED':
      return 410;
    case 'E_PLAN_LIMIT':
      return 402;
    case 'E_BILLING_OFF':
      return 409;
    case 'E_RATE_LIMITED':
    case 'E_AUTH_RATE_LIMITED':
      return 429;
    case 'E_UNAVAILABLE':
      return 503;
    case 'E_TIMEOUT':
      return 504;
    default:
      return 500;
  }
}
