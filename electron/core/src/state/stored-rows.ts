import { storedRowReader } from '@hangar/shared';

/**
 * hangar.db's rows, each parsed as read: one Hangar did not write (a hand edit, a half-restored
 * backup) is an E_STORE_CORRUPT that names the file, the table and the field, and says this.
 */
export const coreDb = storedRowReader(
  'the database was changed outside Hangar: restore it from a backup, or quit Hangar and move the file aside (its hosts are then paired again, its account signed in again)',
);
