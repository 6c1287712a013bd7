// @vitest-environment jsdom
import { cleanup, render, screen } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import type { AccountStatus } from '@hangar/shared';
import type { CoreApi } from '../src/api/index.js';
import { AccountDialog } from '../src/components/account-dialogs.js';

afterEach(cleanup);

const api = { call: () => Promise.resolve({ devices: [] }) } as unknown as CoreApi;

function status(hostKeysFrom: 'bundle' | 'relay' | null): AccountStatus {
  return {
    account: {
      relay_url: 'https://relay.example',
      email: 'me@example.com',
      account_id: 'acc_1',
      signed_in_at: 0,
      device: {
        device_id: 'dev_1',
        name: 'phone',
        status: 'endorsed',
        fingerprint: 'AAAA-BBBB',
        approval_code: null,
        host_keys_from: hostKeysFrom,
      },
    },
    relay: 'connected',
    error: null,
  } as AccountStatus;
}

describe('account dialog', () => {
  it("says when this computer was approved without a code (its hosts' keys are the relay's word), and only then", () => {
    render(<AccountDialog api={api} status={status('relay')} onApprove={() => {}} onClose={() => {}} />);
    expect(
      screen.getByText(/approved without a code: it took the account’s hosts’ keys on the relay’s word/),
    ).toBeTruthy();
    cleanup();
    render(<AccountDialog api={api} status={status('bundle')} onApprove={() => {}} onClose={() => {}} />);
    expect(screen.queryByText(/relay’s word/)).toBeNull();
  });
});
