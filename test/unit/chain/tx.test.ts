import {
  ContractFunctionExecutionError,
  ContractFunctionRevertedError,
  encodeErrorResult,
  zeroAddress,
} from 'viem';
import { describe, expect, it } from 'vitest';
import { bondingManagerAbi, ticketBrokerAbi } from '../../../src/chain/generated/index.js';
import { describeError, revertErrorName } from '../../../src/chain/tx.js';

// The TicketBroker bubbles up the BondingManager's refusals, whose errors its own ABI does not list.
function brokerRevert(data: `0x${string}`) {
  const cause = new ContractFunctionRevertedError({
    abi: ticketBrokerAbi,
    data,
    functionName: 'batchRedeemWinningTickets',
  });
  return new ContractFunctionExecutionError(cause, {
    abi: ticketBrokerAbi,
    functionName: 'batchRedeemWinningTickets',
    args: [[], [], []],
    contractAddress: zeroAddress,
  });
}

describe('revert errors', () => {
  it('names an error raised by another Streamflow contract than the one called', () => {
    const data = encodeErrorResult({
      abi: bondingManagerAbi,
      errorName: 'CurrentRoundNotInitialized',
      args: [7n],
    });
    const err = brokerRevert(data);
    expect(revertErrorName(err)).toBe('CurrentRoundNotInitialized');
    expect(describeError(err)).toBe('batchRedeemWinningTickets reverted with CurrentRoundNotInitialized');
  });

  it('keeps a log line short for an error no contract declares', () => {
    const err = brokerRevert('0xdeadbeef');
    expect(revertErrorName(err)).toBeUndefined();
    expect(describeError(err)).not.toContain('\n');
    expect(describeError(err).length).toBeLessThan(200);
    expect(describeError(new Error('plain'))).toBe('plain');
  });
});
