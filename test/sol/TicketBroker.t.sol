// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Vm} from "./utils/Vm.sol";
import {TicketBrokerFixture} from "./utils/TicketBrokerFixture.sol";
import {ITicketBroker} from "../../contracts/interfaces/ITicketBroker.sol";
import {IBondingManager} from "../../contracts/interfaces/IBondingManager.sol";
import {IMinter} from "../../contracts/interfaces/IMinter.sol";
import {IERC5267} from "@openzeppelin/contracts/interfaces/IERC5267.sol";

/// @dev Accepts no ETH.
contract EthRejecter {
    function fund(ITicketBroker tb) external payable {
        tb.fundDeposit{value: msg.value}();
    }

    function unlock(ITicketBroker tb) external {
        tb.unlock();
    }

    function withdraw(ITicketBroker tb) external {
        tb.withdraw();
    }
}

/// @notice Every external function of the TicketBroker: its effects, events and each revert.
contract TicketBrokerTest is TicketBrokerFixture {
    // ================================================================ constructor and owner

    function _tryDeploy(bytes memory args) internal returns (address deployed) {
        bytes memory code = abi.encodePacked(vm.getCode("TicketBroker.sol:TicketBroker"), args);
        assembly {
            deployed := create(0, add(code, 0x20), mload(code))
        }
    }

    function test_constructor_wiresContractsAndSetsParams() public view {
        assertEq(tb.bondingManager(), address(bm), "bondingManager");
        assertEq(tb.roundsManager(), address(rounds), "roundsManager");
        assertEq(tb.minter(), address(minter), "minter");
        assertEq(tb.unlockPeriod(), UNLOCK_PERIOD, "unlockPeriod");
        assertEq(tb.ticketValidityRounds(), TICKET_VALIDITY, "ticketValidityRounds");
    }

    function test_constructor_revertsOnZeroAddresses() public {
        address[3] memory a = [address(bm), address(rounds), address(minter)];
        for (uint256 i; i < 3; i++) {
            address[3] memory b = a;
            b[i] = address(0);
            vm.expectRevert(ITicketBroker.ZeroAddress.selector);
            _tryDeploy(abi.encode(b[0], b[1], b[2], UNLOCK_PERIOD, TICKET_VALIDITY));
        }
    }

    function test_constructor_revertsWhenUnlockPeriodDoesNotExceedValidity() public {
        vm.expectRevert(abi.encodeWithSelector(ITicketBroker.InvalidUnlockPeriod.selector, 2, 2));
        _tryDeploy(abi.encode(address(bm), address(rounds), address(minter), 2, 2));
    }

    function test_constructor_revertsWhenValidityExceedsFeeBackfillWindow() public {
        vm.expectRevert(abi.encodeWithSelector(ITicketBroker.InvalidTicketValidityRounds.selector, 3, 2));
        _tryDeploy(abi.encode(address(bm), address(rounds), address(minter), 5, 3));
    }

    function test_setUnlockPeriod_setsAndEmits() public {
        vm.expectEmit(address(tb));
        emit ITicketBroker.UnlockPeriodSet(10);
        tb.setUnlockPeriod(10);
        assertEq(tb.unlockPeriod(), 10, "unlockPeriod");
    }

    function test_setUnlockPeriod_revertsWhenNotAboveValidity() public {
        vm.expectRevert(
            abi.encodeWithSelector(ITicketBroker.InvalidUnlockPeriod.selector, TICKET_VALIDITY, TICKET_VALIDITY)
        );
        tb.setUnlockPeriod(TICKET_VALIDITY);
    }

    function test_setUnlockPeriod_revertsForNonOwner() public {
        vm.prank(sender);
        vm.expectRevert(abi.encodeWithSelector(OwnableUnauthorizedAccount.selector, sender));
        tb.setUnlockPeriod(10);
    }

    function test_setTicketValidityRounds_setsAndEmits() public {
        vm.expectEmit(address(tb));
        emit ITicketBroker.TicketValidityRoundsSet(1);
        tb.setTicketValidityRounds(1);
        assertEq(tb.ticketValidityRounds(), 1, "ticketValidityRounds");
        tb.setTicketValidityRounds(0);
        assertEq(tb.ticketValidityRounds(), 0, "validity 0: only the creation round");
    }

    function test_setTicketValidityRounds_revertsWhenNotBelowUnlockPeriod() public {
        bm.setMaxFeeBackfillRounds(6);
        vm.expectRevert(
            abi.encodeWithSelector(ITicketBroker.InvalidUnlockPeriod.selector, UNLOCK_PERIOD, UNLOCK_PERIOD)
        );
        tb.setTicketValidityRounds(UNLOCK_PERIOD);
    }

    function test_setTicketValidityRounds_revertsBeyondBondingManagerFeeBackfill() public {
        tb.setUnlockPeriod(10);
        vm.expectRevert(abi.encodeWithSelector(ITicketBroker.InvalidTicketValidityRounds.selector, 3, 2));
        tb.setTicketValidityRounds(3);
        bm.setMaxFeeBackfillRounds(3);
        tb.setTicketValidityRounds(3);
        assertEq(tb.ticketValidityRounds(), 3, "allowed once the BondingManager accepts fees 3 rounds back");
    }

    function test_setTicketValidityRounds_revertsForNonOwner() public {
        vm.prank(sender);
        vm.expectRevert(abi.encodeWithSelector(OwnableUnauthorizedAccount.selector, sender));
        tb.setTicketValidityRounds(1);
    }

    // ================================================================ funding

    function test_fundDeposit_addsToDepositAndEmits() public {
        vm.expectEmit(address(tb));
        emit ITicketBroker.DepositFunded(sender, sender, 1 ether);
        vm.prank(sender);
        tb.fundDeposit{value: 1 ether}();
        vm.prank(sender);
        tb.fundDeposit{value: 2 ether}();
        assertEq(_deposit(sender), 3 ether, "deposit");
        assertEq(_reserve(sender), 0, "reserve");
        assertEq(address(tb).balance, 3 ether, "broker balance");
    }

    function test_fundReserve_addsToReserveAndEmits() public {
        vm.expectEmit(address(tb));
        emit ITicketBroker.ReserveFunded(sender, sender, 1 ether);
        vm.prank(sender);
        tb.fundReserve{value: 1 ether}();
        assertEq(_deposit(sender), 0, "deposit");
        assertEq(_reserve(sender), 1 ether, "reserve");
        assertEq(address(tb).balance, 1 ether, "broker balance");
    }

    function test_fundDepositAndReserve_addsBothAndEmitsBoth() public {
        vm.expectEmit(address(tb));
        emit ITicketBroker.DepositFunded(sender, sender, 1 ether);
        vm.expectEmit(address(tb));
        emit ITicketBroker.ReserveFunded(sender, sender, 2 ether);
        vm.prank(sender);
        tb.fundDepositAndReserve{value: 3 ether}(1 ether, 2 ether);
        assertEq(_deposit(sender), 1 ether, "deposit");
        assertEq(_reserve(sender), 2 ether, "reserve");
        assertEq(address(tb).balance, 3 ether, "broker balance");
    }

    function test_fundDepositAndReserve_revertsWhenValueIsNotTheSum() public {
        vm.prank(sender);
        vm.expectRevert(abi.encodeWithSelector(ITicketBroker.InvalidFundingAmount.selector, 2 ether, 3 ether));
        tb.fundDepositAndReserve{value: 2 ether}(1 ether, 2 ether);
    }

    function test_fundDepositAndReserve_revertsWhenAmountsOverflow() public {
        vm.prank(sender);
        vm.expectRevert(); // panic 0x11: the sum is checked, so it cannot wrap to msg.value
        tb.fundDepositAndReserve{value: 1}(type(uint256).max, 2);
    }

    function test_fundZero_changesNothingAndEmitsNothing() public {
        vm.recordLogs();
        vm.prank(sender);
        tb.fundDepositAndReserve{value: 0}(0, 0);
        assertEq(vm.getRecordedLogs().length, 0, "no events");
        assertEq(_deposit(sender) + _reserve(sender), 0, "no funds");
    }

    function test_fundDepositFor_creditsTheOtherAccount() public {
        vm.expectEmit(address(tb));
        emit ITicketBroker.DepositFunded(sender, sender2, 1 ether);
        vm.prank(sender2);
        tb.fundDepositFor{value: 1 ether}(sender);
        assertEq(_deposit(sender), 1 ether, "sender's deposit");
        assertEq(_deposit(sender2), 0, "funder's deposit");
    }

    function test_fundReserveFor_creditsTheOtherAccount() public {
        vm.expectEmit(address(tb));
        emit ITicketBroker.ReserveFunded(sender, sender2, 1 ether);
        vm.prank(sender2);
        tb.fundReserveFor{value: 1 ether}(sender);
        assertEq(_reserve(sender), 1 ether, "sender's reserve");
        assertEq(_reserve(sender2), 0, "funder's reserve");
    }

    function test_fundDepositAndReserveFor_creditsTheOtherAccount() public {
        vm.expectEmit(address(tb));
        emit ITicketBroker.DepositFunded(sender, sender2, 1 ether);
        vm.expectEmit(address(tb));
        emit ITicketBroker.ReserveFunded(sender, sender2, 2 ether);
        vm.prank(sender2);
        tb.fundDepositAndReserveFor{value: 3 ether}(sender, 1 ether, 2 ether);
        assertEq(_deposit(sender), 1 ether, "deposit");
        assertEq(_reserve(sender), 2 ether, "reserve");
    }

    function test_fundDepositAndReserveFor_revertsWhenValueIsNotTheSum() public {
        vm.prank(sender2);
        vm.expectRevert(abi.encodeWithSelector(ITicketBroker.InvalidFundingAmount.selector, 1, 3 ether));
        tb.fundDepositAndReserveFor{value: 1}(sender, 1 ether, 2 ether);
    }

    function test_fundFor_revertsForTheZeroAddress() public {
        vm.startPrank(sender);
        vm.expectRevert(ITicketBroker.ZeroAddress.selector);
        tb.fundDepositFor{value: 1}(address(0));
        vm.expectRevert(ITicketBroker.ZeroAddress.selector);
        tb.fundReserveFor{value: 1}(address(0));
        vm.expectRevert(ITicketBroker.ZeroAddress.selector);
        tb.fundDepositAndReserveFor{value: 1}(address(0), 1, 0);
        vm.stopPrank();
    }

    function test_funding_neverCancelsAnUnlock() public {
        _fundDeposit(sender, 1 ether);
        vm.prank(sender);
        tb.unlock();
        uint256 w = _withdrawRound(sender);
        _fundDeposit(sender, 1 ether);
        _fundReserve(sender, 1 ether);
        vm.prank(sender);
        tb.fundDepositAndReserve{value: 2}(1, 1);
        vm.prank(sender2);
        tb.fundDepositAndReserveFor{value: 2}(sender, 1, 1);
        assertEq(_withdrawRound(sender), w, "unlock kept");
    }

    // ================================================================ unlock, cancel, withdraw

    function test_unlock_startsTheTimeLock() public {
        _fundDeposit(sender, 1 ether);
        uint256 r = _round();
        vm.expectEmit(address(tb));
        emit ITicketBroker.Unlock(sender, r, r + UNLOCK_PERIOD);
        vm.prank(sender);
        tb.unlock();
        assertEq(_withdrawRound(sender), r + UNLOCK_PERIOD, "withdrawRound");
    }

    function test_unlock_withReserveOnly() public {
        _fundReserve(sender, 1 ether);
        vm.prank(sender);
        tb.unlock();
        assertEq(_withdrawRound(sender), _round() + UNLOCK_PERIOD, "withdrawRound");
    }

    function test_unlock_revertsWhileUnlocking() public {
        _fundDeposit(sender, 1 ether);
        vm.prank(sender);
        tb.unlock();
        uint256 w = _round() + UNLOCK_PERIOD;
        vm.prank(sender);
        vm.expectRevert(abi.encodeWithSelector(ITicketBroker.UnlockInProgress.selector, w));
        tb.unlock();
    }

    function test_unlock_revertsWithNothingToUnlock() public {
        vm.prank(sender);
        vm.expectRevert(ITicketBroker.NothingToUnlock.selector);
        tb.unlock();
    }

    function test_unlock_usesThePeriodInForceWhenItStarts() public {
        _fundDeposit(sender, 1 ether);
        tb.setUnlockPeriod(10);
        vm.prank(sender);
        tb.unlock();
        assertEq(_withdrawRound(sender), _round() + 10, "withdrawRound");
        tb.setUnlockPeriod(UNLOCK_PERIOD);
        assertEq(_withdrawRound(sender), _round() + 10, "a running unlock keeps its round");
    }

    function test_cancelUnlock_clearsAndEmits() public {
        _fundDeposit(sender, 1 ether);
        vm.prank(sender);
        tb.unlock();
        vm.expectEmit(address(tb));
        emit ITicketBroker.UnlockCancelled(sender);
        vm.prank(sender);
        tb.cancelUnlock();
        assertEq(_withdrawRound(sender), 0, "withdrawRound");
        // It can unlock again.
        vm.prank(sender);
        tb.unlock();
        assertEq(_withdrawRound(sender), _round() + UNLOCK_PERIOD, "unlocked again");
    }

    function test_cancelUnlock_revertsWhenNotUnlocking() public {
        vm.prank(sender);
        vm.expectRevert(ITicketBroker.NotUnlocking.selector);
        tb.cancelUnlock();
    }

    function test_withdraw_paysDepositAndReserveOnceDue() public {
        vm.prank(sender);
        tb.fundDepositAndReserve{value: 3 ether}(1 ether, 2 ether);
        vm.prank(sender);
        tb.unlock();
        _advanceRounds(UNLOCK_PERIOD);
        uint256 before = sender.balance;
        vm.expectEmit(address(tb));
        emit ITicketBroker.Withdrawal(sender, 1 ether, 2 ether);
        vm.prank(sender);
        tb.withdraw();
        assertEq(sender.balance - before, 3 ether, "paid");
        (uint256 d, uint256 r, uint256 w) = tb.getSenderInfo(sender);
        assertEq(d + r + w, 0, "cleared");
        assertEq(address(tb).balance, 0, "broker empty");
    }

    function test_withdraw_worksWithoutTheRoundBeingInitialised() public {
        _fundDeposit(sender, 1 ether);
        vm.prank(sender);
        tb.unlock();
        vm.roll(block.number + UNLOCK_PERIOD * ROUND_LENGTH);
        vm.prank(sender);
        tb.withdraw();
        assertEq(_deposit(sender), 0, "withdrawn");
    }

    function test_withdraw_revertsWhenNotUnlocking() public {
        _fundDeposit(sender, 1 ether);
        vm.prank(sender);
        vm.expectRevert(ITicketBroker.NotUnlocking.selector);
        tb.withdraw();
    }

    function test_withdraw_revertsBeforeTheWithdrawRound() public {
        _fundDeposit(sender, 1 ether);
        vm.prank(sender);
        tb.unlock();
        uint256 w = _round() + UNLOCK_PERIOD;
        for (uint256 i; i < UNLOCK_PERIOD; i++) {
            uint256 r = _round();
            vm.prank(sender);
            vm.expectRevert(abi.encodeWithSelector(ITicketBroker.UnlockNotDue.selector, w, r));
            tb.withdraw();
            _nextRound();
        }
        vm.prank(sender);
        tb.withdraw();
    }

    function test_withdraw_revertsWhenTheReceiverRejectsEth() public {
        EthRejecter rejecter = new EthRejecter();
        rejecter.fund{value: 1 ether}(tb);
        rejecter.unlock(tb);
        _advanceRounds(UNLOCK_PERIOD);
        vm.expectRevert(abi.encodeWithSelector(ITicketBroker.EthTransferFailed.selector, address(rejecter), 1 ether));
        rejecter.withdraw(tb);
        assertEq(_deposit(address(rejecter)), 1 ether, "nothing lost");
    }

    function test_withdraw_afterTicketsDrainedEverythingPaysNothingAndClearsTheUnlock() public {
        _activateOrchestrators();
        _fundDeposit(sender, 1 ether);
        vm.prank(sender);
        tb.unlock();
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 1 ether);
        tb.redeemWinningTicket(t, sig, rand);
        _advanceRounds(UNLOCK_PERIOD);
        uint256 before = sender.balance;
        vm.prank(sender);
        tb.withdraw();
        assertEq(sender.balance, before, "nothing to pay");
        assertEq(_withdrawRound(sender), 0, "unlock cleared");
    }

    // ================================================================ redeemWinningTicket: success

    function test_redeem_paysFromTheDepositCreditsFeesAndSendsEthToTheMinter() public {
        _activateOrchestrators();
        _fundDeposit(sender, 10 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 1 ether);
        bytes32 h = tb.getTicketHash(t);
        uint256 feesBefore = bm.pendingFees(orch);

        // The fee credit comes first (it also answers the round and the recipient's activity), then the payment.
        vm.expectEmit(address(bm));
        emit IBondingManager.FeesCredited(orch, 1 ether, _round());
        vm.expectEmit(address(tb));
        emit ITicketBroker.WinningTicketRedeemed(sender, orch, h, 1 ether, _round(), 0);
        vm.expectEmit(address(minter));
        emit IMinter.ETHDeposited(address(tb), 1 ether);
        vm.expectCall(
            address(bm), abi.encodeCall(IBondingManager.updateOrchestratorWithFees, (orch, 1 ether, _round()))
        );
        vm.prank(makeAddr("anyone")); // anyone may redeem; the value goes to the recipient
        tb.redeemWinningTicket(t, sig, rand);

        assertEq(_deposit(sender), 9 ether, "deposit");
        assertTrue(tb.usedTickets(h), "used");
        assertEq(address(minter).balance, 1 ether, "minter ETH");
        assertEq(address(tb).balance, 9 ether, "broker ETH");
        // orch is its own only delegator: it gets the whole fee (delegators' part rounded down).
        assertApproxEqAbs(bm.pendingFees(orch) - feesBefore, 1 ether, 10, "orchestrator fees");
    }

    function test_redeem_zeroFaceValueMarksUsedWithoutCreditOrTransfer() public {
        _activateOrchestrators();
        _fundDeposit(sender, 1 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 0);
        vm.recordLogs();
        tb.redeemWinningTicket(t, sig, rand);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 1, "only WinningTicketRedeemed");
        assertEq(logs[0].emitter, address(tb), "emitter");
        assertTrue(tb.usedTickets(tb.getTicketHash(t)), "used");
        assertEq(address(minter).balance, 0, "no ETH moved");
    }

    function test_redeem_worksUntilTheLastValidRound() public {
        _activateOrchestrators();
        _fundDeposit(sender, 1 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 1 ether);
        _advanceRounds(TICKET_VALIDITY);
        _reward(orch);
        tb.redeemWinningTicket(t, sig, rand);
        assertEq(_deposit(sender), 0, "paid");
    }

    function test_redeem_worksWhileTheSenderIsUnlocking() public {
        _activateOrchestrators();
        _fundDeposit(sender, 1 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 1 ether);
        vm.prank(sender);
        tb.unlock();
        tb.redeemWinningTicket(t, sig, rand);
        assertEq(_deposit(sender), 0, "paid");
        assertEq(_withdrawRound(sender), _round() + UNLOCK_PERIOD, "unlock untouched");
    }

    function test_redeem_paysTheShortfallFromTheReserve() public {
        _activateOrchestrators();
        vm.prank(sender);
        tb.fundDepositAndReserve{value: 3.3 ether}(0.3 ether, 3 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 0.8 ether);
        assertEq(tb.claimableReserve(sender, orch), 1 ether, "allocation: 3 ETH / 3 active");

        vm.expectEmit(address(tb));
        emit ITicketBroker.WinningTicketRedeemed(sender, orch, tb.getTicketHash(t), 0.8 ether, _round(), 0.5 ether);
        tb.redeemWinningTicket(t, sig, rand);

        assertEq(_deposit(sender), 0, "deposit used first");
        assertEq(_reserve(sender), 2.5 ether, "reserve");
        assertEq(tb.claimedReserve(sender, _round(), orch), 0.5 ether, "claimed");
        assertEq(tb.claimableReserve(sender, orch), 0.5 ether, "allocation left");
        // The others' allocations are unchanged: (2.5 + 0.5 claimed) / 3.
        assertEq(tb.claimableReserve(sender, orch2), 1 ether, "orch2 allocation");
        assertEq(address(minter).balance, 0.8 ether, "full face value sent");
    }

    function test_redeem_revertsWhenTheReserveAllocationIsShortAndLeavesTheTicketUnused() public {
        _activateOrchestrators();
        vm.prank(sender);
        tb.fundDepositAndReserve{value: 3.3 ether}(0.3 ether, 3 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 1.4 ether);
        vm.expectRevert(abi.encodeWithSelector(ITicketBroker.InsufficientFunds.selector, 1.4 ether, 1.3 ether));
        tb.redeemWinningTicket(t, sig, rand);
        assertFalse(tb.usedTickets(tb.getTicketHash(t)), "not burnt");
        assertEq(_deposit(sender), 0.3 ether, "deposit untouched");
        assertEq(_reserve(sender), 3 ether, "reserve untouched");
    }

    function test_redeem_reserveAllocationIsPerRoundAndRecomputedNextRound() public {
        _activateOrchestrators();
        _fundReserve(sender, 3 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 1 ether);
        tb.redeemWinningTicket(t, sig, rand);
        assertEq(tb.claimableReserve(sender, orch), 0, "allocation spent");
        (t, sig, rand) = _signed(orch, 1);
        vm.expectRevert(abi.encodeWithSelector(ITicketBroker.InsufficientFunds.selector, 1, 0));
        tb.redeemWinningTicket(t, sig, rand);

        _nextRound();
        _reward(orch);
        // 2 ETH left, 3 active: 0.666… each.
        assertEq(tb.claimableReserve(sender, orch), uint256(2 ether) / 3, "new round allocation");
        assertEq(tb.claimedReserve(sender, _round() - 1, orch), 1 ether, "last round's claim still readable");
        tb.redeemWinningTicket(t, sig, rand);
        assertEq(tb.claimedReserve(sender, _round(), orch), 1, "this round's claim");
        assertEq(tb.claimedReserve(sender, _round() - 1, orch), 0, "only the latest claim round is kept");
    }

    function test_redeem_reserveClaimsAccumulateAndKeepTheSenderUnlock() public {
        _activateOrchestrators();
        _fundReserve(sender, 3 ether);
        vm.prank(sender);
        tb.unlock();
        uint256 w = _withdrawRound(sender);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 0.25 ether);
        tb.redeemWinningTicket(t, sig, rand);
        (t, sig, rand) = _signed(orch, 0.5 ether);
        tb.redeemWinningTicket(t, sig, rand);
        (t, sig, rand) = _signed(orch2, 1 ether);
        tb.redeemWinningTicket(t, sig, rand);
        assertEq(tb.claimedReserve(sender, _round(), orch), 0.75 ether, "orch's claims add up");
        assertEq(tb.claimedReserve(sender, _round(), orch2), 1 ether, "orch2's claim");
        assertEq(tb.claimableReserve(sender, orch), 0.25 ether, "orch's allocation left");
        assertEq(tb.claimableReserve(sender, orch3), 1 ether, "orch3's allocation is untouched by the others' claims");
        assertEq(_withdrawRound(sender), w, "the unlock survives the claims");
        assertEq(_reserve(sender), 1.25 ether, "reserve");
        _advanceRounds(UNLOCK_PERIOD);
        vm.prank(sender);
        tb.withdraw();
        assertEq(_reserve(sender), 0, "withdrawn");
    }

    function test_redeem_revertsWithInsufficientFundsWhenNothingIsFunded() public {
        _activateOrchestrators();
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 1);
        vm.expectRevert(abi.encodeWithSelector(ITicketBroker.InsufficientFunds.selector, 1, 0));
        tb.redeemWinningTicket(t, sig, rand);
    }

    // ================================================================ redeemWinningTicket: reverts, in check order

    function test_redeem_revertsOnAWrongRecipientRand() public {
        _activateOrchestrators();
        _fundDeposit(sender, 1 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 1);
        vm.expectRevert(abi.encodeWithSelector(ITicketBroker.InvalidRecipientRand.selector, t.recipientRandHash));
        tb.redeemWinningTicket(t, sig, rand + 1);
    }

    function test_redeem_revertsForTheZeroRecipient() public {
        _activateOrchestrators();
        _fundDeposit(sender, 1 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(address(0), 1);
        vm.expectRevert(abi.encodeWithSelector(ITicketBroker.RecipientNotActive.selector, address(0)));
        tb.redeemWinningTicket(t, sig, rand);
    }

    function test_redeem_revertsForARecipientThatIsNotAnOrchestrator() public {
        _activateOrchestrators();
        _fundDeposit(sender, 1 ether);
        address nobody = makeAddr("nobody");
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(nobody, 1);
        vm.expectRevert(abi.encodeWithSelector(ITicketBroker.RecipientNotActive.selector, nobody));
        tb.redeemWinningTicket(t, sig, rand);
    }

    function test_redeem_revertsForAnOrchestratorNotYetActive() public {
        _activateOrchestrators();
        address late = makeAddr("late");
        _registerOrchestrator(late, ORCH_STAKE, 0, 0);
        _fundDeposit(sender, 1 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(late, 1);
        vm.expectRevert(abi.encodeWithSelector(ITicketBroker.RecipientNotActive.selector, late));
        tb.redeemWinningTicket(t, sig, rand);
        _nextRound();
        tb.redeemWinningTicket(t, sig, rand); // active from the next round, the ticket still valid
        assertEq(_deposit(sender), 1 ether - 1, "paid once active");
    }

    function test_redeem_revertsForAnOrchestratorThatLeftTheActiveSet() public {
        _activateOrchestrators();
        _fundDeposit(sender, 1 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 1);
        _unbond(orch, bm.pendingStake(orch)); // resigns: inactive from the next round
        _nextRound();
        vm.expectRevert(abi.encodeWithSelector(ITicketBroker.RecipientNotActive.selector, orch));
        tb.redeemWinningTicket(t, sig, rand);
    }

    function test_redeem_revertsForASlashedOrchestratorAtOnce() public {
        _activateOrchestrators();
        _fundDeposit(sender, 1 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 1);
        _slash(orch, 500_000, address(0));
        vm.expectRevert(abi.encodeWithSelector(ITicketBroker.RecipientNotActive.selector, orch));
        tb.redeemWinningTicket(t, sig, rand);
    }

    function test_redeem_revertsForATicketFromAFutureRound() public {
        _activateOrchestrators();
        _fundDeposit(sender, 1 ether);
        (ITicketBroker.Ticket memory t, uint256 rand) = _ticket(sender, orch, 1, ALWAYS);
        t.creationRound = _round() + 1;
        bytes memory sig = _sign(senderKey, t);
        vm.expectRevert(abi.encodeWithSelector(ITicketBroker.TicketExpired.selector, _round() + 1, _round()));
        tb.redeemWinningTicket(t, sig, rand);
    }

    function test_redeem_revertsForAnExpiredTicket() public {
        _activateOrchestrators();
        _fundDeposit(sender, 1 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 1);
        uint256 created = _round();
        _advanceRounds(TICKET_VALIDITY + 1);
        vm.expectRevert(abi.encodeWithSelector(ITicketBroker.TicketExpired.selector, created, _round()));
        tb.redeemWinningTicket(t, sig, rand);
    }

    function test_redeem_revertsOnAWrongCreationRoundBlockHash() public {
        _activateOrchestrators();
        _fundDeposit(sender, 1 ether);
        (ITicketBroker.Ticket memory t, uint256 rand) = _ticket(sender, orch, 1, ALWAYS);
        t.creationRoundBlockHash = keccak256("another block");
        bytes memory sig = _sign(senderKey, t);
        vm.expectRevert(
            abi.encodeWithSelector(
                ITicketBroker.InvalidCreationRoundBlockHash.selector, t.creationRound, t.creationRoundBlockHash
            )
        );
        tb.redeemWinningTicket(t, sig, rand);
    }

    function test_redeem_revertsForARoundNeverInitialisedEvenWithAZeroHash() public {
        _activateOrchestrators();
        _fundDeposit(sender, 1 ether);
        // Round r + 1 is skipped (never initialised): no block hash was recorded for it.
        vm.roll(rounds.nextRoundStartBlock());
        uint256 skipped = _round();
        _nextRound();
        _reward(orch);
        (ITicketBroker.Ticket memory t, uint256 rand) = _ticket(sender, orch, 1, ALWAYS);
        t.creationRound = skipped;
        t.creationRoundBlockHash = bytes32(0);
        bytes memory sig = _sign(senderKey, t);
        vm.expectRevert(
            abi.encodeWithSelector(ITicketBroker.InvalidCreationRoundBlockHash.selector, skipped, bytes32(0))
        );
        tb.redeemWinningTicket(t, sig, rand);
    }

    function test_redeem_revertsForAUsedTicket() public {
        _activateOrchestrators();
        _fundDeposit(sender, 1 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 1);
        tb.redeemWinningTicket(t, sig, rand);
        vm.expectRevert(abi.encodeWithSelector(ITicketBroker.TicketUsed.selector, tb.getTicketHash(t)));
        tb.redeemWinningTicket(t, sig, rand);
    }

    function test_redeem_revertsOnASignatureByAnotherKey() public {
        _activateOrchestrators();
        _fundDeposit(sender, 1 ether);
        (ITicketBroker.Ticket memory t, uint256 rand) = _ticket(sender, orch, 1, ALWAYS);
        bytes memory sig = _sign(sender2Key, t);
        vm.expectRevert(ITicketBroker.InvalidSignature.selector);
        tb.redeemWinningTicket(t, sig, rand);
    }

    function test_redeem_revertsOnMalformedSignatures() public {
        _activateOrchestrators();
        _fundDeposit(sender, 1 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 1);
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly {
            r := mload(add(sig, 0x20))
            s := mload(add(sig, 0x40))
            v := byte(0, mload(add(sig, 0x60)))
        }
        bytes[6] memory bad = [
            abi.encodePacked(r, s, v, uint8(0)), // 66 bytes
            abi.encodePacked(r, s), // 64 bytes, no v
            abi.encodePacked(r, s, v + 2), // v 29 / 30
            abi.encodePacked(r, s, v - 27), // v 0 / 1
            abi.encodePacked(r, bytes32(0), v), // s = 0
            bytes("")
        ];
        for (uint256 i; i < bad.length; i++) {
            vm.expectRevert(ITicketBroker.InvalidSignature.selector);
            tb.redeemWinningTicket(t, bad[i], rand);
        }
        tb.redeemWinningTicket(t, sig, rand);
    }

    function test_redeem_revertsForTheZeroSenderWhateverTheSignature() public {
        _activateOrchestrators();
        (ITicketBroker.Ticket memory t, uint256 rand) = _ticket(address(0), orch, 0, ALWAYS);
        // An unrecoverable signature makes ecrecover return the zero address; it must not match sender 0.
        bytes memory sig = abi.encodePacked(bytes32(0), bytes32(uint256(1)), uint8(27));
        vm.expectRevert(ITicketBroker.InvalidSignature.selector);
        tb.redeemWinningTicket(t, sig, rand);
    }

    function test_redeem_revertsForALosingTicket() public {
        _activateOrchestrators();
        _fundDeposit(sender, 1 ether);
        (ITicketBroker.Ticket memory t, uint256 rand) = _ticket(sender, orch, 1, 0);
        bytes memory sig = _sign(senderKey, t);
        vm.expectRevert(ITicketBroker.TicketDidNotWin.selector);
        tb.redeemWinningTicket(t, sig, rand);
    }

    function test_redeem_winsExactlyWhenTheDrawIsBelowWinProb() public {
        _activateOrchestrators();
        _fundDeposit(sender, 1 ether);
        // Half the tickets should win with winProb 2^255; check each against the rule itself.
        uint256 wins;
        for (uint256 i; i < 16; i++) {
            (ITicketBroker.Ticket memory t, uint256 rand) = _ticket(sender, orch, 1, 1 << 255);
            bytes memory sig = _sign(senderKey, t);
            bool expected = uint256(keccak256(abi.encodePacked(sig, rand))) < t.winProb;
            if (!expected) vm.expectRevert(ITicketBroker.TicketDidNotWin.selector);
            tb.redeemWinningTicket(t, sig, rand);
            assertEq(tb.usedTickets(tb.getTicketHash(t)), expected, string.concat("ticket ", vm.toString(i)));
            if (expected) wins++;
        }
        assertGt(wins, 0, "some win");
        assertLt(wins, 16, "some lose");
    }

    function test_redeem_revertsWhenTheCurrentRoundIsNotInitialised() public {
        _activateOrchestrators();
        _fundDeposit(sender, 1 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 1);
        vm.roll(rounds.nextRoundStartBlock());
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.CurrentRoundNotInitialized.selector, _round()));
        tb.redeemWinningTicket(t, sig, rand);
        rounds.initializeRound();
        tb.redeemWinningTicket(t, sig, rand);
    }

    /// @notice The fee credit comes first (it answers the round and the recipient's activity), but when it refuses,
    /// the ticket's own error is reported as if the credit came last: the order of the checks is unchanged.
    function test_redeem_reportsTheTicketsOwnErrorBeforeARefusedCredit() public {
        _activateOrchestrators();
        _fundDeposit(sender, 1 ether);
        (ITicketBroker.Ticket memory t, uint256 rand) = _ticket(sender, orch, 1, ALWAYS);
        bytes memory sig = _sign(sender2Key, t); // not the sender's key
        vm.roll(rounds.nextRoundStartBlock()); // the credit refuses: CurrentRoundNotInitialized
        vm.expectRevert(ITicketBroker.InvalidSignature.selector);
        tb.redeemWinningTicket(t, sig, rand);
        (t, sig, rand) = _signed(orch, 1);
        _advanceRounds(TICKET_VALIDITY + 1);
        vm.roll(rounds.nextRoundStartBlock());
        vm.expectRevert(abi.encodeWithSelector(ITicketBroker.TicketExpired.selector, t.creationRound, _round()));
        tb.redeemWinningTicket(t, sig, rand);
        assertFalse(tb.usedTickets(tb.getTicketHash(t)), "unused");
        assertEq(_deposit(sender), 1 ether, "deposit kept");
    }

    /// @notice A ticket valid for the broker in a round the BondingManager no longer credits (its owner lowered
    /// `maxFeeBackfillRounds` below the ticket validity) reverts with the BondingManager's error and stays unused.
    function test_redeem_revertsWithTheCreditsErrorWhenOnlyTheCreditRefuses() public {
        _activateOrchestrators();
        _fundDeposit(sender, 1 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 1);
        _advanceRounds(TICKET_VALIDITY);
        bm.setMaxFeeBackfillRounds(TICKET_VALIDITY - 1);
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.FeeRoundTooOld.selector, t.creationRound, _round()));
        tb.redeemWinningTicket(t, sig, rand);
        assertFalse(tb.usedTickets(tb.getTicketHash(t)), "unused");
        assertEq(_deposit(sender), 1 ether, "deposit kept");
        assertEq(address(minter).balance, 0, "no ETH moved");
    }

    /// @notice A failed check after the credit reverts the credit too.
    function test_redeem_failureAfterTheCreditLeavesNoFees() public {
        _activateOrchestrators();
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 1 ether); // nothing funded
        uint256 feesBefore = bm.pendingFees(orch);
        vm.expectRevert(abi.encodeWithSelector(ITicketBroker.InsufficientFunds.selector, 1 ether, 0));
        tb.redeemWinningTicket(t, sig, rand);
        assertEq(bm.pendingFees(orch), feesBefore, "no fees credited");
    }

    // ================================================================ batchRedeemWinningTickets

    function _batch(uint256 n, address to, uint256 faceValue)
        internal
        returns (ITicketBroker.Ticket[] memory ts, bytes[] memory sigs, uint256[] memory rands)
    {
        ts = new ITicketBroker.Ticket[](n);
        sigs = new bytes[](n);
        rands = new uint256[](n);
        for (uint256 i; i < n; i++) {
            (ts[i], sigs[i], rands[i]) = _signed(to, faceValue);
        }
    }

    function _count(Vm.Log[] memory logs, address emitter, bytes32 topic) internal pure returns (uint256 c) {
        for (uint256 i; i < logs.length; i++) {
            if (logs[i].emitter == emitter && logs[i].topics[0] == topic) c++;
        }
    }

    function test_batch_paysEveryTicketWithOneFeeCreditAndOneTransfer() public {
        _activateOrchestrators();
        _fundDeposit(sender, 10 ether);
        (ITicketBroker.Ticket[] memory ts, bytes[] memory sigs, uint256[] memory rands) = _batch(5, orch, 1 ether);
        vm.expectCall(
            address(bm), abi.encodeCall(IBondingManager.updateOrchestratorWithFees, (orch, 5 ether, _round()))
        );
        vm.expectEmit(address(minter));
        emit IMinter.ETHDeposited(address(tb), 5 ether);
        vm.recordLogs();
        bool[] memory ok = tb.batchRedeemWinningTickets(ts, sigs, rands);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i; i < 5; i++) {
            assertTrue(ok[i], string.concat("ticket ", vm.toString(i)));
            assertTrue(tb.usedTickets(tb.getTicketHash(ts[i])), "used");
        }
        assertEq(_count(logs, address(tb), ITicketBroker.WinningTicketRedeemed.selector), 5, "redeemed events");
        assertEq(_count(logs, address(bm), IBondingManager.FeesCredited.selector), 1, "one fee credit");
        assertEq(_count(logs, address(minter), IMinter.ETHDeposited.selector), 1, "one transfer");
        assertEq(_deposit(sender), 5 ether, "deposit");
        assertEq(address(minter).balance, 5 ether, "minter ETH");
    }

    function test_batch_groupsFeeCreditsByRecipientAndCreationRound() public {
        _activateOrchestrators();
        _fundDeposit(sender, 10 ether);
        (ITicketBroker.Ticket memory a, bytes memory sa, uint256 ra) = _signed(orch, 1 ether);
        (ITicketBroker.Ticket memory b, bytes memory sb, uint256 rb) = _signed(orch2, 2 ether);
        _nextRound();
        _reward(orch);
        (ITicketBroker.Ticket memory c, bytes memory sc, uint256 rc) = _signed(orch, 3 ether);
        (ITicketBroker.Ticket memory d, bytes memory sd, uint256 rd) = _signed(orch, 4 ether);

        ITicketBroker.Ticket[] memory ts = new ITicketBroker.Ticket[](4);
        (ts[0], ts[1], ts[2], ts[3]) = (a, c, b, d);
        bytes[] memory sigs = new bytes[](4);
        (sigs[0], sigs[1], sigs[2], sigs[3]) = (sa, sc, sb, sd);
        uint256[] memory rands = new uint256[](4);
        (rands[0], rands[1], rands[2], rands[3]) = (ra, rc, rb, rd);

        uint256 r = _round();
        vm.expectCall(address(bm), abi.encodeCall(IBondingManager.updateOrchestratorWithFees, (orch, 1 ether, r - 1)));
        vm.expectCall(address(bm), abi.encodeCall(IBondingManager.updateOrchestratorWithFees, (orch, 7 ether, r)));
        vm.expectCall(address(bm), abi.encodeCall(IBondingManager.updateOrchestratorWithFees, (orch2, 2 ether, r - 1)));
        vm.recordLogs();
        tb.batchRedeemWinningTickets(ts, sigs, rands);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(
            _count(logs, address(bm), IBondingManager.FeesCredited.selector), 3, "one credit per (recipient, round)"
        );
        assertEq(_count(logs, address(minter), IMinter.ETHDeposited.selector), 1, "one transfer");
        assertEq(address(minter).balance, 10 ether, "minter ETH");
    }

    function test_batch_reportsEachFailureAndPaysTheRest() public {
        _activateOrchestrators();
        _fundDeposit(sender, 10 ether);
        (ITicketBroker.Ticket[] memory ts, bytes[] memory sigs, uint256[] memory rands) = _batch(6, orch, 1 ether);
        ts[1] = ts[0]; // the same ticket twice: the second is used
        sigs[1] = sigs[0];
        rands[1] = rands[0];
        rands[2] += 1; // wrong rand
        sigs[3] = _sign(sender2Key, ts[3]); // wrong signer
        ts[4].recipient = makeAddr("nobody"); // not active (and the signature no longer matches)
        sigs[4] = _sign(senderKey, ts[4]);

        bytes4[6] memory expected = [
            bytes4(0),
            ITicketBroker.TicketUsed.selector,
            ITicketBroker.InvalidRecipientRand.selector,
            ITicketBroker.InvalidSignature.selector,
            ITicketBroker.RecipientNotActive.selector,
            bytes4(0)
        ];
        for (uint256 i; i < 6; i++) {
            if (expected[i] != bytes4(0)) {
                vm.expectEmit(address(tb));
                emit ITicketBroker.TicketRedemptionFailed(tb.getTicketHash(ts[i]), expected[i]);
            }
        }
        bool[] memory ok = tb.batchRedeemWinningTickets(ts, sigs, rands);
        for (uint256 i; i < 6; i++) {
            assertEq(ok[i], expected[i] == bytes4(0), string.concat("ticket ", vm.toString(i)));
        }
        assertEq(_deposit(sender), 8 ether, "two paid");
        assertFalse(tb.usedTickets(tb.getTicketHash(ts[2])), "failed ticket stays unused");
    }

    function test_batch_reportsExpiryBlockHashAndLosingTickets() public {
        _activateOrchestrators();
        _fundDeposit(sender, 10 ether);
        (ITicketBroker.Ticket[] memory ts, bytes[] memory sigs, uint256[] memory rands) = _batch(3, orch, 1 ether);
        ts[0].creationRound = _round() + 1;
        sigs[0] = _sign(senderKey, ts[0]);
        ts[1].creationRoundBlockHash = keccak256("x");
        sigs[1] = _sign(senderKey, ts[1]);
        ts[2].winProb = 0;
        sigs[2] = _sign(senderKey, ts[2]);
        vm.expectEmit(address(tb));
        emit ITicketBroker.TicketRedemptionFailed(tb.getTicketHash(ts[0]), ITicketBroker.TicketExpired.selector);
        vm.expectEmit(address(tb));
        emit ITicketBroker.TicketRedemptionFailed(
            tb.getTicketHash(ts[1]), ITicketBroker.InvalidCreationRoundBlockHash.selector
        );
        vm.expectEmit(address(tb));
        emit ITicketBroker.TicketRedemptionFailed(tb.getTicketHash(ts[2]), ITicketBroker.TicketDidNotWin.selector);
        vm.recordLogs();
        bool[] memory ok = tb.batchRedeemWinningTickets(ts, sigs, rands);
        assertFalse(ok[0] || ok[1] || ok[2], "none paid");
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(_count(logs, address(bm), IBondingManager.FeesCredited.selector), 0, "no credit");
        assertEq(_count(logs, address(minter), IMinter.ETHDeposited.selector), 0, "no transfer");
    }

    function test_batch_stopsPayingWhenTheSenderRunsOut() public {
        _activateOrchestrators();
        _fundDeposit(sender, 2.5 ether);
        (ITicketBroker.Ticket[] memory ts, bytes[] memory sigs, uint256[] memory rands) = _batch(4, orch, 1 ether);
        vm.expectEmit(address(tb));
        emit ITicketBroker.TicketRedemptionFailed(tb.getTicketHash(ts[2]), ITicketBroker.InsufficientFunds.selector);
        bool[] memory ok = tb.batchRedeemWinningTickets(ts, sigs, rands);
        assertTrue(ok[0] && ok[1] && !ok[2] && !ok[3], "first two paid");
        assertEq(_deposit(sender), 0.5 ether, "left");
        assertEq(address(minter).balance, 2 ether, "minter ETH");
    }

    function test_batch_claimsFromTheReserveWithinTheAllocation() public {
        _activateOrchestrators();
        vm.prank(sender);
        tb.fundDepositAndReserve{value: 4 ether}(1 ether, 3 ether);
        (ITicketBroker.Ticket[] memory ts, bytes[] memory sigs, uint256[] memory rands) = _batch(3, orch, 0.75 ether);
        bool[] memory ok = tb.batchRedeemWinningTickets(ts, sigs, rands);
        // 1 ETH deposit + 1 ETH allocation: the third (2.25 ETH in total) does not fit.
        assertTrue(ok[0] && ok[1] && !ok[2], "two paid");
        assertEq(tb.claimedReserve(sender, _round(), orch), 0.5 ether, "claimed");
        assertEq(_reserve(sender), 2.5 ether, "reserve");
    }

    function test_batch_matchesSingleRedemptions() public {
        _activateOrchestrators();
        vm.prank(sender);
        tb.fundDepositAndReserve{value: 4 ether}(1 ether, 3 ether);
        _fundDeposit(sender2, 1 ether);
        ITicketBroker.Ticket[] memory ts = new ITicketBroker.Ticket[](6);
        bytes[] memory sigs = new bytes[](6);
        uint256[] memory rands = new uint256[](6);
        for (uint256 i; i < 6; i++) {
            address to = i % 3 == 0 ? orch : i % 3 == 1 ? orch2 : orch3;
            (ts[i], sigs[i], rands[i]) = i % 2 == 0 ? _signed(to, 0.6 ether) : _signedBy(sender2Key, to, 0.4 ether);
        }
        uint256 snap = vm.snapshotState();
        bool[] memory single = new bool[](6);
        for (uint256 i; i < 6; i++) {
            try tb.redeemWinningTicket(ts[i], sigs[i], rands[i]) {
                single[i] = true;
            } catch {}
        }
        uint256[8] memory a = _state();
        vm.revertToState(snap);
        bool[] memory batch = tb.batchRedeemWinningTickets(ts, sigs, rands);
        uint256[8] memory b = _state();
        for (uint256 i; i < 6; i++) {
            assertEq(batch[i], single[i], string.concat("ticket ", vm.toString(i)));
        }
        for (uint256 i; i < 8; i++) {
            assertEq(a[i], b[i], string.concat("state ", vm.toString(i)));
        }
    }

    function _state() internal view returns (uint256[8] memory s) {
        s = [
            _deposit(sender),
            _reserve(sender),
            _deposit(sender2),
            bm.pendingFees(orch),
            bm.pendingFees(orch2),
            bm.pendingFees(orch3),
            address(minter).balance,
            address(tb).balance
        ];
    }

    function test_batch_revertsOnLengthMismatch() public {
        (ITicketBroker.Ticket[] memory ts, bytes[] memory sigs,) = _batch(2, orch, 1);
        vm.expectRevert(abi.encodeWithSelector(ITicketBroker.LengthMismatch.selector, 2, 2, 1));
        tb.batchRedeemWinningTickets(ts, sigs, new uint256[](1));
        vm.expectRevert(abi.encodeWithSelector(ITicketBroker.LengthMismatch.selector, 2, 3, 2));
        tb.batchRedeemWinningTickets(ts, new bytes[](3), new uint256[](2));
    }

    function test_batch_emptyDoesNothing() public {
        vm.recordLogs();
        bool[] memory ok = tb.batchRedeemWinningTickets(new ITicketBroker.Ticket[](0), new bytes[](0), new uint256[](0));
        assertEq(ok.length, 0, "no results");
        assertEq(vm.getRecordedLogs().length, 0, "no events");
    }

    function test_batch_revertsWholeWhenTheCurrentRoundIsNotInitialised() public {
        _activateOrchestrators();
        _fundDeposit(sender, 10 ether);
        (ITicketBroker.Ticket[] memory ts, bytes[] memory sigs, uint256[] memory rands) = _batch(2, orch, 1 ether);
        vm.roll(rounds.nextRoundStartBlock());
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.CurrentRoundNotInitialized.selector, _round()));
        tb.batchRedeemWinningTickets(ts, sigs, rands);
        assertFalse(tb.usedTickets(tb.getTicketHash(ts[0])), "nothing burnt");
    }

    // ================================================================ views

    function test_getSenderInfo_reportsFundsAndUnlock() public {
        vm.prank(sender);
        tb.fundDepositAndReserve{value: 3}(1, 2);
        vm.prank(sender);
        tb.unlock();
        (uint256 d, uint256 r, uint256 w) = tb.getSenderInfo(sender);
        assertEq(d, 1, "deposit");
        assertEq(r, 2, "reserve");
        assertEq(w, _round() + UNLOCK_PERIOD, "withdrawRound");
    }

    function test_claimableReserve_isZeroForInactiveRecipients() public {
        _activateOrchestrators();
        _fundReserve(sender, 3 ether);
        assertEq(tb.claimableReserve(sender, makeAddr("nobody")), 0, "not an orchestrator");
        assertEq(tb.claimableReserve(sender, address(0)), 0, "zero address");
        assertEq(tb.claimableReserve(sender, orch), 1 ether, "active");
    }

    function test_claimableReserve_followsTheCountOfTheLastInitialisedRound() public {
        _fundReserve(sender, 4 ether);
        address late = makeAddr("late");
        _registerOrchestrator(late, ORCH_STAKE, 0, 0);
        _activateOrchestrators();
        // Round r: orch, orch2, orch3 joined in r - 1 are active; late joined in r - 1 too.
        assertEq(tb.claimableReserve(sender, orch), 1 ether, "4 active");
        address later = makeAddr("later");
        _registerOrchestrator(later, ORCH_STAKE, 0, 0);
        assertEq(tb.claimableReserve(sender, orch), 1 ether, "a join mid-round changes nothing this round");
        assertEq(tb.claimableReserve(sender, later), 0, "not active yet");
        vm.roll(rounds.nextRoundStartBlock());
        assertEq(tb.claimableReserve(sender, orch), 1 ether, "until the new round is initialised");
        rounds.initializeRound();
        assertEq(tb.claimableReserve(sender, orch), 0.8 ether, "5 active");
        assertEq(tb.claimableReserve(sender, later), 0.8 ether, "the newcomer's share");
    }

    function test_eip712Domain_describesTheTicketDomain() public view {
        (, string memory name, string memory version, uint256 chainId, address verifyingContract,,) =
            IERC5267(address(tb)).eip712Domain();
        assertEq(name, "Streamflow TicketBroker", "name");
        assertEq(version, "1", "version");
        assertEq(chainId, block.chainid, "chainId");
        assertEq(verifyingContract, address(tb), "verifyingContract");
    }

    function test_getTicketHash_matchesAnIndependentEip712Digest() public {
        (ITicketBroker.Ticket memory t,) = _ticket(sender, orch, 1 ether, 1 << 200);
        assertEq(tb.getTicketHash(t), _digest(t, block.chainid, address(tb)), "digest");
    }

    /// @dev The digest computed by viem's hashTypedData (and by src/pm/ticket.ts `ticketHash`) for this ticket
    /// under the domain {name: "Streamflow TicketBroker", version: "1", chainId: 31337,
    /// verifyingContract: 0x00000000000000000000000000000000000005f1b0}.
    function test_getTicketHash_matchesTheDigestComputedByViem() public {
        assertEq(block.chainid, 31337, "forge's default chain id");
        address at = address(uint160(0x5f1b0));
        vm.etch(at, address(tb).code);
        ITicketBroker.Ticket memory t = ITicketBroker.Ticket({
            recipient: address(uint160(0xa1)),
            sender: address(uint160(0xb2)),
            faceValue: 1 ether,
            winProb: 1 << 255,
            senderNonce: 42,
            recipientRandHash: keccak256(abi.encodePacked(uint256(7))),
            creationRound: 10,
            creationRoundBlockHash: keccak256("round 10")
        });
        assertEq(
            ITicketBroker(at).getTicketHash(t),
            0x46f05d213f6b01f36153c7097b18862c8c914dc22b8b2719bea9b8119244dced,
            "digest agrees with viem"
        );
    }
}
