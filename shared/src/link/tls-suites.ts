/**
 * The TLS 1.3 cipher suites a link offers and accepts, in preference order, for every TLS link
 * between Node processes: the agent's server (accepted and relay-spliced links alike) and the
 * core's dial (direct or over a relay's carrier). Pass it as `ciphers` to tls.createServer /
 * tls.connect beside `minVersion: 'TLSv1.3'`.
 *
 * TLS_AES_128_GCM_SHA256 first: TLS 1.3's mandatory suite (RFC 8446 §9.1), 10 AES rounds to
 * AES-256's 14, and the link's bulk sender spends a third of its main thread in AES-GCM. Node's
 * default order prefers TLS_AES_256_GCM_SHA384, and a Node server picks by its own order, so
 * the agent's order is what a link gets. The other two TLS 1.3 suites stay accepted, so an agent
 * or a core from before this order (or one offering a single suite) still links.
 */
export const LINK_TLS_CIPHERS = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256';
