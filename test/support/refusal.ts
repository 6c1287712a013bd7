import { expect } from 'vitest';
import { HangarError } from '@hangar/shared';

/** The HangarError `promise` rejects with; fails the test if it resolves or rejects with anything else. */
export async function refusal(promise: Promise<unknown>): Promise<HangarError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(HangarError);
    return error as HangarError;
  }
  throw new Error('expected a refusal');
}
