export { Metering, type MeteringOptions } from './metering.js';
export { saveEntitlementKey } from './billing-store.js';
