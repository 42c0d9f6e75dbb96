// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {TicketBrokerFixture} from "./utils/TicketBrokerFixture.sol";
import {ITicketBroker} from "../../contracts/interfaces/ITicketBroker.sol";
import {IBondingManager} from "../../contracts/interfaces/IBondingManager.sol";

/// @dev A sender contract whose ETH receiver re-enters the broker during `withdraw` and records what it sees.
contract ReentrantSender {
    ITicketBroker internal immutable tb;
    bool internal entered;
    bytes public withdrawAgainError;
    bytes public unlockAgainError;
    uint256 public seenDeposit = type(uint256).max;
    uint256 public seenReserve = type(uint256).max;
    uint256 public seenWithdrawRound = type(uint256).max;

    constructor(ITicketBroker tb_) {
        tb = tb_;
    }

    function fund(uint256 d, uint256 r) external payable {
        tb.fundDepositAndReserve{value: msg.value}(d, r);
    }

    function unlock() external {
        tb.unlock();
    }

    function withdraw() external {
        tb.withdraw();
    }

    receive() external payable {
        if (entered) return;
        entered = true;
        (seenDeposit, seenReserve, seenWithdrawRound) = tb.getSenderInfo(address(this));
        try tb.withdraw() {}
        catch (bytes memory err) {
            withdrawAgainError = err;
        }
        try tb.unlock() {}
        catch (bytes memory err) {
            unlockAgainError = err;
        }
    }
}

/// @dev A Minter stand-in that re-enters `redeemWinningTicket` with the ticket being paid when it receives the ETH.
contract ReentrantMinter {
    ITicketBroker public tb;
    ITicketBroker.Ticket internal _ticket;
    bytes internal _sig;
    uint256 internal _rand;
    bytes public reentryError;
    bool public ticketUsedDuringTransfer;
    uint256 public depositDuringTransfer = type(uint256).max;

    function arm(ITicketBroker tb_, ITicketBroker.Ticket calldata t, bytes calldata sig, uint256 rand) external {
        tb = tb_;
        _ticket = t;
        _sig = sig;
        _rand = rand;
    }

    function depositETH() external payable {
        ticketUsedDuringTransfer = tb.usedTickets(tb.getTicketHash(_ticket));
        (depositDuringTransfer,,) = tb.getSenderInfo(_ticket.sender);
        try tb.redeemWinningTicket(_ticket, _sig, _rand) {}
        catch (bytes memory err) {
            reentryError = err;
        }
    }
}

/// @notice THREATS.md items 1–9 and 15 against the TicketBroker, each as named tests.
contract TicketBrokerThreatsTest is TicketBrokerFixture {
    function setUp() public override {
        super.setUp();
        _activateOrchestrators();
    }

    // ================================================================ 1. replay

    function test_threat1_replay_sameTicketTwiceReverts() public {
        _fundDeposit(sender, 10 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 1 ether);
        tb.redeemWinningTicket(t, sig, rand);
        bytes32 h = tb.getTicketHash(t);
        vm.expectRevert(abi.encodeWithSelector(ITicketBroker.TicketUsed.selector, h));
        tb.redeemWinningTicket(t, sig, rand);
        // Nor in a batch, nor twice within one batch.
        ITicketBroker.Ticket[] memory ts = new ITicketBroker.Ticket[](2);
        (ts[0], ts[1]) = (t, t);
        bytes[] memory sigs = new bytes[](2);
        (sigs[0], sigs[1]) = (sig, sig);
        uint256[] memory rands = new uint256[](2);
        (rands[0], rands[1]) = (rand, rand);
        bool[] memory ok = tb.batchRedeemWinningTickets(ts, sigs, rands);
        assertFalse(ok[0] || ok[1], "replayed in a batch");
        assertEq(_deposit(sender), 9 ether, "paid once");
    }

    function test_threat1_replay_sameTicketTwiceInOneBatchPaysOnce() public {
        _fundDeposit(sender, 10 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 1 ether);
        ITicketBroker.Ticket[] memory ts = new ITicketBroker.Ticket[](2);
        (ts[0], ts[1]) = (t, t);
        bytes[] memory sigs = new bytes[](2);
        (sigs[0], sigs[1]) = (sig, sig);
        uint256[] memory rands = new uint256[](2);
        (rands[0], rands[1]) = (rand, rand);
        bool[] memory ok = tb.batchRedeemWinningTickets(ts, sigs, rands);
        assertTrue(ok[0] && !ok[1], "first paid, second refused");
        assertEq(_deposit(sender), 9 ether, "paid once");
    }

    function test_threat1_replay_withAnotherRecipientReverts() public {
        _fundDeposit(sender, 10 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 1 ether);
        // orch2 sees the winning ticket and its revealed rand in the mempool and claims it for itself.
        ITicketBroker.Ticket memory stolen = _copy(t); // memory structs are references
        stolen.recipient = orch2;
        vm.prank(orch2);
        vm.expectRevert(ITicketBroker.InvalidSignature.selector);
        tb.redeemWinningTicket(stolen, sig, rand);
        // Replaying it after the rightful redemption fails too.
        tb.redeemWinningTicket(t, sig, rand);
        vm.prank(orch2);
        vm.expectRevert(ITicketBroker.InvalidSignature.selector);
        tb.redeemWinningTicket(stolen, sig, rand);
        assertEq(_deposit(sender), 9 ether, "paid once");
    }

    function test_threat1_replay_frontRunByAThirdPartyStillPaysTheRecipient() public {
        _fundDeposit(sender, 10 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 1 ether);
        uint256 feesBefore = bm.pendingFees(orch);
        address mallory = makeAddr("mallory");
        vm.prank(mallory);
        tb.redeemWinningTicket(t, sig, rand);
        assertApproxEqAbs(bm.pendingFees(orch) - feesBefore, 1 ether, 10, "the recipient is credited");
        assertEq(bm.pendingFees(mallory), 0, "the caller gets nothing");
    }

    // ================================================================ 2. signature malleability

    function test_threat2_eip2098CompactSignatureRejected() public {
        _fundDeposit(sender, 10 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 1 ether);
        bytes memory compact = _compact(sig);
        assertEq(compact.length, 64, "EIP-2098 form");
        vm.expectRevert(ITicketBroker.InvalidSignature.selector);
        tb.redeemWinningTicket(t, compact, rand);
        tb.redeemWinningTicket(t, sig, rand);
    }

    function test_threat2_highSTwinRejected() public {
        _fundDeposit(sender, 10 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 1 ether);
        assertTrue(_isLowS(sig), "vm.sign gives low s");
        bytes memory twin = _highSTwin(sig);
        // The twin is a valid signature by the same key (what a lenient verifier would accept) and gives another draw.
        bytes32 h = tb.getTicketHash(t);
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly {
            r := mload(add(twin, 0x20))
            s := mload(add(twin, 0x40))
            v := byte(0, mload(add(twin, 0x60)))
        }
        assertEq(ecrecover(h, v, r, s), sender, "twin recovers the sender");
        assertTrue(keccak256(abi.encodePacked(twin, rand)) != keccak256(abi.encodePacked(sig, rand)), "another draw");

        vm.expectRevert(ITicketBroker.InvalidSignature.selector);
        tb.redeemWinningTicket(t, twin, rand);
        tb.redeemWinningTicket(t, sig, rand);
        // Nor as a second draw after the low-s form was paid.
        vm.expectRevert(abi.encodeWithSelector(ITicketBroker.TicketUsed.selector, h));
        tb.redeemWinningTicket(t, twin, rand);
    }

    // ================================================================ 3. cross-deployment replay

    function test_threat3_ticketSignedForAnotherBrokerRejected() public {
        _fundDeposit(sender, 10 ether);
        (ITicketBroker.Ticket memory t, uint256 rand) = _ticket(sender, orch, 1 ether, ALWAYS);
        bytes memory sig = _signDigest(senderKey, _digest(t, block.chainid, makeAddr("anotherBroker")));
        vm.expectRevert(ITicketBroker.InvalidSignature.selector);
        tb.redeemWinningTicket(t, sig, rand);
        // The same ticket signed under this broker's domain pays.
        assertEq(_digest(t, block.chainid, address(tb)), tb.getTicketHash(t), "own domain");
        tb.redeemWinningTicket(t, _signDigest(senderKey, _digest(t, block.chainid, address(tb))), rand);
    }

    function test_threat3_ticketValidOnAnotherDeploymentRejected() public {
        _fundDeposit(sender, 10 ether);
        ITicketBroker other = ITicketBroker(
            _deploy(
                "TicketBroker",
                abi.encode(address(bm), address(rounds), address(minter), UNLOCK_PERIOD, TICKET_VALIDITY)
            )
        );
        (ITicketBroker.Ticket memory t, uint256 rand) = _ticket(sender, orch, 1 ether, ALWAYS);
        bytes memory sig = _signDigest(senderKey, other.getTicketHash(t));
        assertTrue(other.getTicketHash(t) != tb.getTicketHash(t), "domains differ");
        vm.expectRevert(ITicketBroker.InvalidSignature.selector);
        tb.redeemWinningTicket(t, sig, rand);
    }

    function test_threat3_ticketSignedForAnotherChainRejected() public {
        _fundDeposit(sender, 10 ether);
        (ITicketBroker.Ticket memory t, uint256 rand) = _ticket(sender, orch, 1 ether, ALWAYS);
        bytes memory sig = _signDigest(senderKey, _digest(t, 1, address(tb)));
        vm.expectRevert(ITicketBroker.InvalidSignature.selector);
        tb.redeemWinningTicket(t, sig, rand);
    }

    // ================================================================ 4. lottery bias

    function test_threat4_sameSignatureWithAnotherRecipientRandFailsTheCommitment() public {
        _fundDeposit(sender, 10 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 1 ether);
        // A recipient that would like another draw for the same signed ticket must reveal the committed rand.
        for (uint256 i = 1; i <= 3; i++) {
            vm.expectRevert(abi.encodeWithSelector(ITicketBroker.InvalidRecipientRand.selector, t.recipientRandHash));
            tb.redeemWinningTicket(t, sig, rand + i);
        }
        tb.redeemWinningTicket(t, sig, rand);
    }

    // ================================================================ 5. expiry

    function test_threat5_wrongCreationRoundBlockHashReverts() public {
        _fundDeposit(sender, 10 ether);
        (ITicketBroker.Ticket memory t, uint256 rand) = _ticket(sender, orch, 1 ether, ALWAYS);
        // The hash of another round.
        t.creationRoundBlockHash = rounds.blockHashForRound(t.creationRound - 1);
        bytes memory sig = _sign(senderKey, t);
        vm.expectRevert(
            abi.encodeWithSelector(
                ITicketBroker.InvalidCreationRoundBlockHash.selector, t.creationRound, t.creationRoundBlockHash
            )
        );
        tb.redeemWinningTicket(t, sig, rand);
    }

    function test_threat5_backdatedBeyondValidityReverts() public {
        _fundDeposit(sender, 10 ether);
        uint256 old = _round();
        bytes32 oldHash = rounds.blockHashForRound(old);
        _advanceRounds(TICKET_VALIDITY + 1);
        _reward(orch);
        // Signed now, with a real (old) round and its real block hash.
        (ITicketBroker.Ticket memory t, uint256 rand) = _ticket(sender, orch, 1 ether, ALWAYS);
        t.creationRound = old;
        t.creationRoundBlockHash = oldHash;
        bytes memory sig = _sign(senderKey, t);
        vm.expectRevert(abi.encodeWithSelector(ITicketBroker.TicketExpired.selector, old, _round()));
        tb.redeemWinningTicket(t, sig, rand);
        // Backdated within validity is accepted (the window is what the ticket's round allows).
        t.creationRound = _round() - TICKET_VALIDITY;
        t.creationRoundBlockHash = rounds.blockHashForRound(t.creationRound);
        tb.redeemWinningTicket(t, _sign(senderKey, t), rand);
    }

    function test_threat5_futureRoundReverts() public {
        _fundDeposit(sender, 10 ether);
        (ITicketBroker.Ticket memory t, uint256 rand) = _ticket(sender, orch, 1 ether, ALWAYS);
        t.creationRound = _round() + 1;
        t.creationRoundBlockHash = keccak256("guessed");
        bytes memory sig = _sign(senderKey, t);
        vm.expectRevert(abi.encodeWithSelector(ITicketBroker.TicketExpired.selector, _round() + 1, _round()));
        tb.redeemWinningTicket(t, sig, rand);
        // Still refused once that round arrives: the guessed hash is not the recorded one.
        _nextRound();
        _reward(orch);
        vm.expectRevert(
            abi.encodeWithSelector(
                ITicketBroker.InvalidCreationRoundBlockHash.selector, t.creationRound, t.creationRoundBlockHash
            )
        );
        tb.redeemWinningTicket(t, sig, rand);
    }

    function test_threat5_expiredTicketReverts() public {
        _fundDeposit(sender, 10 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 1 ether);
        uint256 created = t.creationRound;
        _advanceRounds(TICKET_VALIDITY + 1);
        vm.expectRevert(abi.encodeWithSelector(ITicketBroker.TicketExpired.selector, created, _round()));
        tb.redeemWinningTicket(t, sig, rand);
        assertFalse(tb.usedTickets(tb.getTicketHash(t)), "not used");
        assertEq(_deposit(sender), 10 ether, "nothing paid");
    }

    function test_threat5_redemptionWorksAfterTheOrchestratorSkippedRewardInThePreviousRound() public {
        _fundDeposit(sender, 10 ether);
        _nextRound(); // round r: orch does not call reward
        (ITicketBroker.Ticket memory t1, bytes memory s1, uint256 r1) = _signed(orch, 1 ether);
        _nextRound(); // round r + 1: no reward yet either
        (ITicketBroker.Ticket memory t2, bytes memory s2, uint256 r2) = _signed(orch, 1 ether);
        uint256 feesBefore = bm.pendingFees(orch);
        tb.redeemWinningTicket(t1, s1, r1);
        tb.redeemWinningTicket(t2, s2, r2);
        assertApproxEqAbs(bm.pendingFees(orch) - feesBefore, 2 ether, 10, "both credited");
        // And reward still works afterwards in the round.
        _reward(orch);
    }

    // ================================================================ 6. reserve griefing

    function test_threat6_oneWeiDepositBeforeRedemptionStillPaysInFull() public {
        _fundDeposit(sender, 1 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 1 ether);
        address griefer = makeAddr("griefer");
        vm.deal(griefer, 1);
        vm.prank(griefer);
        tb.fundDepositFor{value: 1}(sender);
        tb.redeemWinningTicket(t, sig, rand);
        assertEq(_deposit(sender), 1, "the griefer's wei is left");
        assertEq(address(minter).balance, 1 ether, "paid in full");
    }

    function test_threat6_oneWeiDepositDoesNotBurnAnUnderfundedTicket() public {
        _fundDeposit(sender, 0.5 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 1 ether);
        address griefer = makeAddr("griefer");
        vm.deal(griefer, 2);
        vm.prank(griefer);
        tb.fundDepositFor{value: 1}(sender);
        vm.expectRevert(abi.encodeWithSelector(ITicketBroker.InsufficientFunds.selector, 1 ether, 0.5 ether + 1));
        tb.redeemWinningTicket(t, sig, rand);
        assertFalse(tb.usedTickets(tb.getTicketHash(t)), "ticket not burnt");
        assertEq(_deposit(sender), 0.5 ether + 1, "nothing paid");
        // Once the sender can pay, the same ticket pays in full.
        _fundDeposit(sender, 0.5 ether);
        tb.redeemWinningTicket(t, sig, rand);
        assertEq(address(minter).balance, 1 ether, "paid in full later");
    }

    function test_threat6_oneWeiReserveDoesNotTurnARevertIntoAPartialPayment() public {
        _fundReserve(sender, 3 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 1 ether + 1);
        address griefer = makeAddr("griefer");
        vm.deal(griefer, 1);
        vm.prank(griefer);
        tb.fundReserveFor{value: 1}(sender);
        // Allocation (3 ETH + 1 wei) / 3 = 1 ETH: one wei short; the whole redemption reverts.
        vm.expectRevert(abi.encodeWithSelector(ITicketBroker.InsufficientFunds.selector, 1 ether + 1, 1 ether));
        tb.redeemWinningTicket(t, sig, rand);
        assertFalse(tb.usedTickets(tb.getTicketHash(t)), "ticket not burnt");
        assertEq(_reserve(sender), 3 ether + 1, "nothing claimed");
        assertEq(tb.claimedReserve(sender, _round(), orch), 0, "no claim recorded");
    }

    function test_threat6_thirdPartyFundingDoesNotCancelThePendingUnlock() public {
        _fundDeposit(sender, 1 ether);
        vm.prank(sender);
        tb.unlock();
        uint256 w = _withdrawRound(sender);
        address griefer = makeAddr("griefer");
        vm.deal(griefer, 3);
        vm.startPrank(griefer);
        tb.fundDepositFor{value: 1}(sender);
        tb.fundReserveFor{value: 1}(sender);
        tb.fundDepositAndReserveFor{value: 1}(sender, 1, 0);
        vm.stopPrank();
        assertEq(_withdrawRound(sender), w, "unlock kept");
        _advanceRounds(UNLOCK_PERIOD);
        uint256 before = sender.balance;
        vm.prank(sender);
        tb.withdraw();
        assertEq(sender.balance - before, 1 ether + 3, "withdrawn on time, the griefer's wei included");
    }

    // ================================================================ 7. withdrawal front-run

    function test_threat7_withdrawBeforeTheUnlockPeriodEndsReverts() public {
        _fundDeposit(sender, 1 ether);
        // The sender signs a ticket, then unlocks at once.
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 1 ether);
        vm.prank(sender);
        tb.unlock();
        uint256 w = _withdrawRound(sender);
        assertGt(w, t.creationRound + TICKET_VALIDITY, "the lock outlasts the ticket's validity");
        // Through the ticket's last valid round, withdrawing reverts.
        for (uint256 r = _round(); r <= t.creationRound + TICKET_VALIDITY; r++) {
            vm.prank(sender);
            vm.expectRevert(abi.encodeWithSelector(ITicketBroker.UnlockNotDue.selector, w, r));
            tb.withdraw();
            if (r < t.creationRound + TICKET_VALIDITY) {
                _nextRound();
                _reward(orch);
            }
        }
        // In its last valid round the ticket is still paid.
        tb.redeemWinningTicket(t, sig, rand);
        assertEq(_deposit(sender), 0, "the orchestrator was paid first");
        while (_round() < w) _nextRound();
        vm.prank(sender);
        tb.withdraw();
    }

    function test_threat7_unlockPeriodMustExceedTicketValidity() public {
        vm.expectRevert(
            abi.encodeWithSelector(ITicketBroker.InvalidUnlockPeriod.selector, TICKET_VALIDITY, TICKET_VALIDITY)
        );
        tb.setUnlockPeriod(TICKET_VALIDITY);
        vm.expectRevert(
            abi.encodeWithSelector(ITicketBroker.InvalidUnlockPeriod.selector, TICKET_VALIDITY - 1, TICKET_VALIDITY)
        );
        tb.setUnlockPeriod(TICKET_VALIDITY - 1);
        bm.setMaxFeeBackfillRounds(6);
        vm.expectRevert(
            abi.encodeWithSelector(ITicketBroker.InvalidUnlockPeriod.selector, UNLOCK_PERIOD, UNLOCK_PERIOD)
        );
        tb.setTicketValidityRounds(UNLOCK_PERIOD);
        vm.expectRevert(
            abi.encodeWithSelector(ITicketBroker.InvalidUnlockPeriod.selector, UNLOCK_PERIOD, UNLOCK_PERIOD + 1)
        );
        tb.setTicketValidityRounds(UNLOCK_PERIOD + 1);
        assertGt(tb.unlockPeriod(), tb.ticketValidityRounds(), "kept");
    }

    // ================================================================ 8. reserve split

    /// @dev Three orchestrators are active in the round; mid-round two more join (active next round) and one is
    /// slashed (inactive at once). The split stays by the count snapshotted when the round was initialised.
    function test_threat8_reserveSplitWithTheActiveSetChangingMidRound() public {
        uint256 reserve = 3 ether + 2;
        _fundReserve(sender, reserve);
        address late1 = makeAddr("late1");
        address late2 = makeAddr("late2");
        _registerOrchestrator(late1, 5 * ORCH_STAKE, 0, 0);
        _registerOrchestrator(late2, 5 * ORCH_STAKE, 0, 0);
        _slash(orch3, 100_000, address(0));
        assertEq(bm.currentRoundActiveCount(), 3, "count of the round");
        assertEq(bm.getOrchestratorPoolSize(), 4, "the set has changed");

        uint256 share = reserve / 3;
        address[5] memory all = [orch, orch2, orch3, late1, late2];
        uint256 total;
        for (uint256 i; i < all.length; i++) {
            uint256 claimable = tb.claimableReserve(sender, all[i]);
            assertLe(claimable, share, "claimable <= reserve / count");
            // Try to take more than the share, then exactly what is claimable.
            (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(all[i], share + 1);
            vm.expectRevert();
            tb.redeemWinningTicket(t, sig, rand);
            if (claimable == 0) continue;
            (t, sig, rand) = _signed(all[i], claimable);
            tb.redeemWinningTicket(t, sig, rand);
            uint256 claimed = tb.claimedReserve(sender, _round(), all[i]);
            assertLe(claimed, share, "each <= reserve / active count of the round");
            total += claimed;
        }
        assertEq(total, 2 * share, "only the two still active claimed");
        assertLe(total, reserve, "sum <= reserve");
        assertEq(_reserve(sender), reserve - total, "reserve debited by the claims");

        // Next round: the set is orch, orch2, late1, late2 (orch3 was slashed out): a new split by 4.
        _nextRound();
        assertEq(bm.currentRoundActiveCount(), 4, "new count");
        uint256 left = _reserve(sender);
        for (uint256 i; i < all.length; i++) {
            assertLe(tb.claimableReserve(sender, all[i]), left / 4, "new round split");
        }
        assertEq(tb.claimableReserve(sender, late1), left / 4, "a newcomer gets its share");
        assertEq(tb.claimableReserve(sender, orch3), 0, "the slashed one gets nothing");
    }

    /// @dev Random claim sizes and orders, with the set changing mid-round between claims.
    function testFuzz_threat8_claimsNeverExceedTheReserveOrTheShare(uint256 seed, uint96 reserveSeed) public {
        uint256 reserve = bound(reserveSeed, 3, 100 ether);
        _fundReserve(sender, reserve);
        address[3] memory active = [orch, orch2, orch3];
        uint256 share = reserve / 3;
        uint256 total;
        for (uint256 k; k < 8; k++) {
            uint256 x = uint256(keccak256(abi.encode(seed, k)));
            if (x % 5 == 0) {
                // The set changes: a newcomer joins the pool (active only next round).
                _registerOrchestrator(makeAddr(string.concat("late", vm.toString(k))), ORCH_STAKE, 0, 0);
            }
            address to = active[(x >> 8) % 3];
            uint256 fv = 1 + (x >> 16) % (share + 2);
            (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(to, fv);
            try tb.redeemWinningTicket(t, sig, rand) {
                total += fv;
            } catch {}
        }
        for (uint256 i; i < 3; i++) {
            assertLe(tb.claimedReserve(sender, _round(), active[i]), share, "each <= reserve / count");
        }
        assertLe(total, reserve, "sum <= reserve");
        assertEq(_reserve(sender), reserve - total, "the reserve pays exactly the claims");
    }

    // ================================================================ 9. fees go to the creation round's fee share

    function test_threat9_feesFollowTheCreationRoundFeeShareAfterAChange() public {
        address o = makeAddr("o9");
        address d = makeAddr("delegator9");
        _registerOrchestrator(o, ORCH_STAKE, 0, 600_000); // 60 % of fees to delegators
        _bond(d, ORCH_STAKE, o);
        _nextRound();
        _fundDeposit(sender, 10 ether);
        uint256 r1 = _round();
        (ITicketBroker.Ticket memory t1, bytes memory s1, uint256 x1) = _signed(o, 1 ether);
        // In the ticket's round the orchestrator drops its fee share to 0 (in force from the next round).
        vm.prank(o);
        bm.registerOrchestrator(0, 0);
        _nextRound();
        (, uint256 feeShareThen) = bm.cutsForRound(o, r1);
        (, uint256 feeShareNow) = bm.cutsForRound(o, _round());
        assertEq(feeShareThen, 600_000, "fee share of the creation round");
        assertEq(feeShareNow, 0, "fee share now");

        uint256 dBefore = bm.pendingFees(d);
        uint256 oBefore = bm.pendingFees(o);
        vm.expectCall(address(bm), abi.encodeCall(IBondingManager.updateOrchestratorWithFees, (o, 1 ether, r1)));
        tb.redeemWinningTicket(t1, s1, x1);
        // d holds half the stake of round r1: half of the delegators' 60 %.
        assertApproxEqAbs(bm.pendingFees(d) - dBefore, 0.3 ether, 10, "delegator's part by the creation round's share");
        assertApproxEqAbs(bm.pendingFees(o) - oBefore, 0.7 ether, 10, "orchestrator's part");

        // A ticket of the new round follows the new share.
        (ITicketBroker.Ticket memory t2, bytes memory s2, uint256 x2) = _signed(o, 1 ether);
        dBefore = bm.pendingFees(d);
        tb.redeemWinningTicket(t2, s2, x2);
        assertEq(bm.pendingFees(d) - dBefore, 0, "no share under the new fee share");
    }

    // ================================================================ 15. reentrancy

    function test_threat15_reentrancyThroughTheWithdrawReceiverSeesStateAlreadyUpdated() public {
        ReentrantSender s = new ReentrantSender(tb);
        vm.deal(address(this), 3 ether);
        s.fund{value: 3 ether}(1 ether, 2 ether);
        s.unlock();
        _advanceRounds(UNLOCK_PERIOD);
        s.withdraw();
        assertEq(address(s).balance, 3 ether, "paid once");
        assertEq(s.seenDeposit(), 0, "deposit cleared before the transfer");
        assertEq(s.seenReserve(), 0, "reserve cleared before the transfer");
        assertEq(s.seenWithdrawRound(), 0, "unlock cleared before the transfer");
        assertEq(s.withdrawAgainError(), abi.encodeWithSelector(ITicketBroker.NotUnlocking.selector), "re-withdraw");
        assertEq(s.unlockAgainError(), abi.encodeWithSelector(ITicketBroker.NothingToUnlock.selector), "re-unlock");
        assertEq(address(tb).balance, 0, "broker empty");
    }

    function test_threat15_reentrancyThroughTheMinterTransferSeesTheTicketUsed() public {
        ReentrantMinter hostile = new ReentrantMinter();
        ITicketBroker tb2 = ITicketBroker(
            _deploy(
                "TicketBroker",
                abi.encode(address(bm), address(rounds), address(hostile), UNLOCK_PERIOD, TICKET_VALIDITY)
            )
        );
        bm.setTicketBroker(address(tb2));
        vm.deal(sender, 10 ether);
        vm.prank(sender);
        tb2.fundDeposit{value: 2 ether}();
        (ITicketBroker.Ticket memory t, uint256 rand) = _ticket(sender, orch, 1 ether, ALWAYS);
        bytes memory sig = _signDigest(senderKey, tb2.getTicketHash(t));
        hostile.arm(tb2, t, sig, rand);
        tb2.redeemWinningTicket(t, sig, rand);
        assertTrue(hostile.ticketUsedDuringTransfer(), "marked used before the ETH left");
        assertEq(hostile.depositDuringTransfer(), 1 ether, "deposit debited before the ETH left");
        assertEq(
            hostile.reentryError(),
            abi.encodeWithSelector(ITicketBroker.TicketUsed.selector, tb2.getTicketHash(t)),
            "re-entry refused"
        );
        (uint256 dep,,) = tb2.getSenderInfo(sender);
        assertEq(dep, 1 ether, "paid once");
    }
}
