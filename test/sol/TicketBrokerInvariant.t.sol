// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {TicketBrokerFixture} from "./utils/TicketBrokerFixture.sol";
import {TicketBrokerHandler} from "./handlers/TicketBrokerHandler.sol";

/// @notice Invariants of the TicketBroker under random sequences of funding (by senders and third parties), unlocks,
/// cancels, withdrawals, single and batch redemptions (fresh, old, expired, duplicated and replayed tickets, to
/// active and inactive recipients), round changes and active-set changes, driven by TicketBrokerHandler.
contract TicketBrokerInvariantTest is TicketBrokerFixture {
    TicketBrokerHandler internal handler;

    function setUp() public override {
        super.setUp();
        _activateOrchestrators();
        address churner = makeAddr("churner");
        _fund(churner, 100_000 ether);

        uint256[] memory keys = new uint256[](3);
        (keys[0], keys[1], keys[2]) = (0x5E1, 0x5E2, 0x5E3);
        address[] memory orchs = new address[](3);
        (orchs[0], orchs[1], orchs[2]) = (orch, orch2, orch3);
        handler = new TicketBrokerHandler(tb, bm, rounds, keys, orchs, churner);

        targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](9);
        selectors[0] = TicketBrokerHandler.fund.selector;
        selectors[1] = TicketBrokerHandler.unlock.selector;
        selectors[2] = TicketBrokerHandler.cancelUnlock.selector;
        selectors[3] = TicketBrokerHandler.withdraw.selector;
        selectors[4] = TicketBrokerHandler.redeem.selector;
        selectors[5] = TicketBrokerHandler.batchRedeem.selector;
        selectors[6] = TicketBrokerHandler.replay.selector;
        selectors[7] = TicketBrokerHandler.nextRound.selector;
        selectors[8] = TicketBrokerHandler.churn.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    /// @notice The broker's ETH balance is exactly the sum of all deposits and reserves.
    function invariant_balanceEqualsDepositsPlusReserves() public view {
        uint256 sum;
        for (uint256 i; i < handler.sendersLength(); i++) {
            (uint256 d, uint256 r,) = tb.getSenderInfo(handler.senders(i));
            sum += d + r;
        }
        assertEq(address(tb).balance, sum, "broker ETH == sum of deposits and reserves");
    }

    /// @notice A ticket pays at most once, every payment reached the Minter, and no check recorded a violation.
    function invariant_ticketPaysAtMostOnce() public view {
        assertEq(handler.violation(), "", "handler check");
        assertEq(address(minter).balance, handler.ghostTotalPaid(), "Minter ETH == face values paid");
    }

    /// @notice A sender loses exactly the face values of its paid tickets, never more than those of the winning
    /// tickets it signed: funded − withdrawn − held == paid ≤ signed.
    function invariant_noSenderLosesMoreThanItsWinningTickets() public view {
        for (uint256 i; i < handler.sendersLength(); i++) {
            address s = handler.senders(i);
            (uint256 d, uint256 r,) = tb.getSenderInfo(s);
            uint256 lost = handler.ghostFunded(s) - handler.ghostWithdrawn(s) - d - r;
            assertEq(lost, handler.ghostPaid(s), "loss == face values paid");
            assertLe(handler.ghostPaid(s), handler.ghostSigned(s), "paid <= face values of winning tickets signed");
        }
    }

    /// @notice In the current round, each recipient's reserve claims on a sender are at most the reserve the round's
    /// claims split from divided by the round's active count, and all claims together at most that reserve.
    function invariant_reserveClaimsWithinTheSplit() public view {
        uint256 c = rounds.currentRound();
        uint256 count = bm.currentRoundActiveCount();
        for (uint256 i; i < handler.sendersLength(); i++) {
            address s = handler.senders(i);
            uint256 base = handler.ghostReserveBase(s, c);
            uint256 total;
            for (uint256 j; j < handler.recipientsLength(); j++) {
                uint256 claimed = tb.claimedReserve(s, c, handler.recipients(j));
                if (count != 0) assertLe(claimed, base / count, "claim <= reserve / active count");
                total += claimed;
            }
            assertLe(total, base, "claims of the round <= reserve");
        }
    }

    /// @notice A fixed pseudo-random sequence through the handler reaches every path the invariants are about
    /// (deposit and reserve payments, failures, replays, withdrawals, round and set changes), with the invariants
    /// checked after every step.
    function testFuzz_sequence_invariantsHoldAfterEveryStep(uint256 seed) public {
        for (uint256 k; k < 150; k++) {
            uint256 x = uint256(keccak256(abi.encode(seed, k)));
            uint256 action = x % 100;
            if (action < 22) handler.fund(x >> 8, x >> 16, x >> 24, x >> 88);
            else if (action < 30) handler.unlock(x >> 8);
            else if (action < 33) handler.cancelUnlock(x >> 8);
            else if (action < 40) handler.withdraw(x >> 8);
            else if (action < 65) handler.redeem(x >> 8, x >> 16, x >> 24, x >> 150);
            else if (action < 78) handler.batchRedeem(x >> 8, x >> 16);
            else if (action < 83) handler.replay(x >> 8);
            else if (action < 95) handler.nextRound(x >> 8);
            else handler.churn();
            invariant_balanceEqualsDepositsPlusReserves();
            invariant_ticketPaysAtMostOnce();
            invariant_noSenderLosesMoreThanItsWinningTickets();
            invariant_reserveClaimsWithinTheSplit();
        }
    }

    function test_sequence_reachesEveryPath() public {
        testFuzz_sequence_invariantsHoldAfterEveryStep(0x5f1);
        assertGt(handler.ghostRedemptions(), 10, "tickets paid");
        assertGt(handler.ghostReserveClaims(), 0, "reserve claims");
        assertGt(handler.ghostFailedRedemptions(), 10, "tickets refused");
        assertGt(handler.calls("withdraw.ok"), 0, "withdrawals");
        assertGt(rounds.currentRound(), 5, "rounds passed");
    }
}
