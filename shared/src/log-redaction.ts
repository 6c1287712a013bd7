/**
 * Where secrets sit in what Hangar logs: pino's `redact` paths for the agent and the core alike,
 * so a field is redacted wherever it is logged, not by hand at each call. Requests are logged at
 * debug as `{ method, params }`: the pairing code is hosts.add's `params.code`; environment values
 * of sessions and jobs (often keys and tokens) and job secrets are censored value by value, their
 * names kept. Error codes (`err.code`, a refusal's `code`) are not secrets and stay readable.
 */
export const LOG_REDACT_PATHS: readonly string[] = [
  // hosts.add in the core API: the one-time pairing code
  'params.code',
  'pairing_code',
  '*.pairing_code',
  // session.create / job.submit at the agent; sessions.create / jobs.submit in the core API
  'params.env.*',
  'params.secret_env.*',
  'params.session.env.*',
  'params.spec.env.*',
  'params.spec.secret_env.*',
  // credentials by name, at the top or one level down
  'token',
  '*.token',
  'secret',
  '*.secret',
  'private_key',
  '*.private_key',
  // account.signup / account.login in the core API, and the relay's session tokens
  'password',
  '*.password',
  'access_token',
  '*.access_token',
  'refresh_token',
  '*.refresh_token',
  // account.join's invitation (lets one person join, once)
  'invite_token',
  '*.invite_token',
];

export const LOG_REDACT_CENSOR = '[Redacted]';

/** Options for a pino logger named `name` at `level`, with the shared redaction (core and agent alike). */
export function redactedLogOptions(name: string, level: string) {
  return { name, level, redact: { paths: [...LOG_REDACT_PATHS], censor: LOG_REDACT_CENSOR } };
}
