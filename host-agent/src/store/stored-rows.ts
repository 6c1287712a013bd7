import { storedRowReader } from '@hangar/shared';

/**
 * agent.db's rows, each parsed as read: one the agent did not write (a hand edit, a half-restored
 * backup) is an E_STORE_CORRUPT that names the file, the table and the field, and says this.
 */
export const agentDb = storedRowReader(
  'the database was changed outside the agent: restore it from a backup, or stop the agent, move the file aside and pair this host again',
);
