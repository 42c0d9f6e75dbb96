// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Fixture} from "./utils/Fixture.sol";
import {IBondingManager} from "../../contracts/interfaces/IBondingManager.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @notice A delegator contract whose ETH receiver re-enters the BondingManager while `withdrawFees` pays it
/// (THREATS 15). It records what it saw during the re-entry and whether the re-entrant call went through.
contract FeeReenterer {
    enum Mode {
        None,
        WithdrawFees,
        ClaimEarnings,
        Bond,
        Unbond
    }

    IBondingManager internal immutable bm;
    IERC20 internal immutable lpt;

    Mode public mode;
    uint256 public reenterAmount;
    address public reenterTo;

    bool public reentered;
    bool public reentrySucceeded;
    uint256 public received;
    uint256 public feesSeenDuringReentry;
    uint256 public pendingFeesSeenDuringReentry;
    uint256 public stakeSeenDuringReentry;

    constructor(IBondingManager bm_, IERC20 lpt_) {
        bm = bm_;
        lpt = lpt_;
        require(lpt_.approve(address(bm_), type(uint256).max), "approve");
    }

    function arm(Mode mode_, uint256 amount, address to) external {
        mode = mode_;
        reenterAmount = amount;
        reenterTo = to;
    }

    function bond(uint256 amount, address to) external {
        bm.bond(amount, to);
    }

    function withdrawFees(uint256 amount) external {
        bm.withdrawFees(payable(address(this)), amount);
    }

    receive() external payable {
        received += msg.value;
        if (reentered || mode == Mode.None) return;
        reentered = true;
        feesSeenDuringReentry = bm.getDelegator(address(this)).fees;
        pendingFeesSeenDuringReentry = bm.pendingFees(address(this));
        stakeSeenDuringReentry = bm.pendingStake(address(this));
        if (mode == Mode.WithdrawFees) {
            try bm.withdrawFees(payable(address(this)), reenterAmount) {
                reentrySucceeded = true;
            } catch {}
        } else if (mode == Mode.ClaimEarnings) {
            try bm.claimEarnings() {
                reentrySucceeded = true;
            } catch {}
        } else if (mode == Mode.Bond) {
            try bm.bond(reenterAmount, reenterTo) {
                reentrySucceeded = true;
            } catch {}
        } else if (mode == Mode.Unbond) {
            try bm.unbond(reenterAmount) {
                reentrySucceeded = true;
            } catch {}
        }
    }
}

/// @notice An ETH recipient that refuses payment.
contract RejectingRecipient {
    receive() external payable {
        revert("no ETH, thanks");
    }
}

/// @notice THREATS 11 (delegator squeezing), 13 (third-party calls), 14 (earnings rounding), 15 (re-entrancy through
/// an ETH receiver) and 16 (slashing) against the BondingManager. THREATS 17 is in BondingManagerSortedList.t.sol,
/// 12 in BondingManagerFuzz.t.sol and BondingManagerInvariant.t.sol.
contract BondingManagerThreatsTest is Fixture {
    address internal o1;
    address internal o2;
    address internal d1;
    address internal d2;
    address internal attacker;
    address internal finder;

    function setUp() public override {
        super.setUp();
        o1 = makeAddr("orchestrator1");
        o2 = makeAddr("orchestrator2");
        d1 = makeAddr("delegator1");
        d2 = makeAddr("delegator2");
        attacker = makeAddr("attacker");
        finder = makeAddr("finder");
    }

    // =========================================================================================================
    // THREATS 11: delegator squeezing
    // =========================================================================================================

    function test_squeeze_rewardCutRaiseAppliesFromNextRoundOnly() public {
        _registerOrchestrator(o1, 1000 ether, 100_000, 500_000);
        _bond(d1, 1000 ether, o1);
        _nextRound();
        vm.prank(o1);
        bm.registerOrchestrator(PPM, 500_000); // take everything from the next round on

        uint256 before = bm.pendingStake(d1);
        uint256 reward = minter.currentMintableTokens();
        _reward(o1);
        uint256 expected = (reward - reward * 100_000 / PPM) / 2;
        assertApproxEqAbs(bm.pendingStake(d1) - before, expected, 2, "this round still pays at the old 10 % cut");

        _nextRound();
        before = bm.pendingStake(d1);
        _reward(o1);
        assertEq(bm.pendingStake(d1), before, "the new 100 % cut applies from the next round");
    }

    function test_squeeze_feeShareDropAppliesFromNextRoundOnly() public {
        _registerOrchestrator(o1, 1000 ether, 0, PPM);
        _bond(d1, 1000 ether, o1);
        _nextRound();
        vm.prank(o1);
        bm.registerOrchestrator(0, 0);
        _creditFees(o1, 1 ether, _round());
        assertEq(bm.pendingFees(d1), 0.5 ether, "fees of this round use the old share");

        _nextRound();
        _creditFees(o1, 1 ether, _round());
        assertEq(bm.pendingFees(d1), 0.5 ether, "fees of the next round use the new share");
    }

    function test_squeeze_delegatorUnbondsWithoutLossBeforeNewCutApplies() public {
        _registerOrchestrator(o1, 1000 ether, 100_000, 500_000);
        _bond(d1, 1000 ether, o1);
        _nextRound();
        _reward(o1);
        _creditFees(o1, 1 ether, _round());
        _nextRound();
        // The orchestrator announces a squeeze; it calls reward first in this round at the old cut.
        vm.prank(o1);
        bm.registerOrchestrator(PPM, 0);
        _reward(o1);
        _creditFees(o1, 1 ether, _round());

        // The delegator sees it and leaves in the same round with everything earned so far.
        uint256 stake = bm.pendingStake(d1);
        uint256 fees = bm.pendingFees(d1);
        uint256 lockId = _unbond(d1, stake);
        (uint256 locked,) = bm.getUnbondingLock(d1, lockId);
        assertEq(locked, stake, "unbonds its whole pending stake");
        assertEq(bm.pendingStake(d1), 0, "nothing left bonded");

        _advanceRounds(UNBONDING_PERIOD);
        vm.prank(d1);
        bm.withdrawStake(lockId);
        assertEq(token.balanceOf(d1), stake, "withdraws everything it had earned");
        assertEq(bm.pendingFees(d1), fees, "fees earned at the old share stay claimable");
        vm.prank(d1);
        bm.withdrawFees(payable(d1), fees);
        assertEq(d1.balance, fees, "fees paid in full");
    }

    function test_squeeze_delegatorMovesWithoutLossBeforeNewCutApplies() public {
        _registerOrchestrator(o1, 1000 ether, 100_000, 500_000);
        _registerOrchestrator(o2, 1000 ether, 100_000, 500_000);
        _bond(d1, 1000 ether, o1);
        _nextRound();
        vm.prank(o1);
        bm.registerOrchestrator(PPM, 0);
        _reward(o1);
        uint256 stake = bm.pendingStake(d1);
        vm.prank(d1);
        bm.bond(0, o2);
        assertEq(bm.getDelegator(d1).delegate, o2, "moved");
        assertEq(bm.pendingStake(d1), stake, "moved with its whole pending stake");
        _nextRound();
        _reward(o1);
        assertEq(bm.pendingStake(d1), stake, "the squeezing orchestrator's reward no longer touches it");
    }

    function test_squeeze_cutChangeRevertsInRoundLockWindow() public {
        _registerOrchestrator(o1, 1000 ether, 100_000, 500_000);
        _nextRound();
        _rollToLockWindow();
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.CutsLocked.selector, _round()));
        vm.prank(o1);
        bm.registerOrchestrator(PPM, 0);
        // Right after the window the change is accepted again (for the round after).
        _nextRound();
        vm.prank(o1);
        bm.registerOrchestrator(PPM, 0);
        (uint256 rc,) = bm.cutsForRound(o1, _round() + 1);
        assertEq(rc, PPM, "accepted outside the window");
    }

    function test_squeeze_secondChangeInNextRoundDoesNotRewriteThatRound() public {
        _registerOrchestrator(o1, 1000 ether, 100_000, 500_000);
        _nextRound();
        uint256 r = _round();
        vm.prank(o1);
        bm.registerOrchestrator(200_000, 400_000); // applies at r + 1
        _nextRound();
        vm.prank(o1);
        bm.registerOrchestrator(PPM, 0); // applies at r + 2, must not touch r + 1
        (uint256 rc1, uint256 fs1) = bm.cutsForRound(o1, r + 1);
        assertEq(rc1, 200_000, "round r+1 rewardCut");
        assertEq(fs1, 400_000, "round r+1 feeShare");
        (uint256 rc0, uint256 fs0) = bm.cutsForRound(o1, r);
        assertEq(rc0, 100_000, "round r rewardCut");
        assertEq(fs0, 500_000, "round r feeShare");
        (uint256 rc2,) = bm.cutsForRound(o1, r + 2);
        assertEq(rc2, PPM, "round r+2 rewardCut");
    }

    function test_squeeze_backfilledFeesUseShareOfTicketRoundAfterTwoChanges() public {
        _registerOrchestrator(o1, 1000 ether, 0, PPM);
        _bond(d1, 1000 ether, o1);
        _nextRound();
        uint256 ticketRound = _round(); // feeShare 100 %
        vm.prank(o1);
        bm.registerOrchestrator(0, 500_000);
        _nextRound();
        vm.prank(o1);
        bm.registerOrchestrator(0, 0);
        _nextRound();
        _creditFees(o1, 1 ether, ticketRound);
        assertEq(bm.pendingFees(d1), 0.5 ether, "fee share of the ticket's round, not a later one");
    }

    function test_squeeze_reRegistrationAfterResigningAppliesNextRound() public {
        _registerOrchestrator(o1, 1000 ether, 0, PPM);
        _nextRound();
        _unbond(o1, 1000 ether); // resigns
        _bond(o1, 1000 ether, o1);
        vm.prank(o1);
        bm.registerOrchestrator(PPM, 0);
        (uint256 rc,) = bm.cutsForRound(o1, _round() + 1);
        assertEq(rc, PPM, "re-registration cuts apply from the next round");
    }

    // =========================================================================================================
    // THREATS 13: third-party calls
    // =========================================================================================================

    function _victimSetup() internal returns (uint256 lockId) {
        _registerOrchestrator(o1, 1000 ether, 100_000, 500_000);
        _registerOrchestrator(o2, 1000 ether, 100_000, 500_000);
        _bond(d1, 500 ether, o1);
        _nextRound();
        _reward(o1);
        lockId = _unbond(d1, 100 ether);
        _fund(attacker, 1000 ether);
    }

    function _assertDelegatorEq(IBondingManager.DelegatorInfo memory a, IBondingManager.DelegatorInfo memory b)
        internal
        pure
    {
        assertEq(a.bondedAmount, b.bondedAmount, "victim bondedAmount");
        assertEq(a.fees, b.fees, "victim fees");
        assertEq(a.delegate, b.delegate, "victim delegate");
        assertEq(a.startRound, b.startRound, "victim startRound");
        assertEq(a.lastClaimRound, b.lastClaimRound, "victim lastClaimRound");
        assertEq(a.nextUnbondingLockId, b.nextUnbondingLockId, "victim nextUnbondingLockId");
    }

    function test_thirdParty_cannotChangeAnothersDelegateOrStake() public {
        _victimSetup();
        IBondingManager.DelegatorInfo memory before = bm.getDelegator(d1);

        vm.startPrank(attacker);
        bm.bond(10 ether, o1);
        bm.bond(0, o2);
        bm.unbond(5 ether);
        bm.claimEarnings();
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.NotRegisteredOrchestrator.selector, d1));
        bm.bond(1 ether, d1);
        vm.stopPrank();

        _assertDelegatorEq(bm.getDelegator(d1), before);
        assertEq(bm.getDelegator(d1).delegate, o1, "delegate unchanged");
    }

    function test_thirdParty_cannotForceClaimBeforeReward() public {
        _victimSetup();
        _nextRound();
        IBondingManager.DelegatorInfo memory victimBefore = bm.getDelegator(d1);
        IBondingManager.DelegatorInfo memory orchBefore = bm.getDelegator(o1);

        // Before o1's reward in this round: bond to it, credit fees to it, claim, move away.
        vm.prank(attacker);
        bm.bond(10 ether, o1);
        _creditFees(o1, 0.1 ether, _round());
        vm.prank(attacker);
        bm.claimEarnings();
        vm.prank(attacker);
        bm.bond(0, o2);

        _assertDelegatorEq(bm.getDelegator(d1), victimBefore);
        IBondingManager.DelegatorInfo memory orchAfter = bm.getDelegator(o1);
        assertEq(orchAfter.bondedAmount, orchBefore.bondedAmount, "orchestrator bondedAmount not claimed for it");
        assertEq(orchAfter.lastClaimRound, orchBefore.lastClaimRound, "orchestrator lastClaimRound untouched");
    }

    function test_thirdParty_activityBeforeRewardDoesNotChangeRewardsOfOthers() public {
        _victimSetup();
        _nextRound();
        uint256 snap = vm.snapshotState();
        _reward(o1);
        uint256 victimQuiet = bm.pendingStake(d1);
        uint256 orchQuiet = bm.pendingStake(o1);
        vm.revertToState(snap);

        vm.prank(attacker);
        bm.bond(900 ether, o1);
        _creditFees(o1, 0.1 ether, _round());
        vm.prank(attacker);
        bm.claimEarnings();
        _reward(o1);
        assertEq(bm.pendingStake(d1), victimQuiet, "victim's reward unchanged by third-party activity");
        assertEq(bm.pendingStake(o1), orchQuiet, "orchestrator's reward unchanged by third-party activity");
        assertEq(bm.pendingStake(attacker), 900 ether, "attacker's new stake earns nothing this round");
    }

    function test_thirdParty_cannotRebondOrWithdrawAnothersLock() public {
        uint256 lockId = _victimSetup();
        _advanceRounds(UNBONDING_PERIOD);

        vm.startPrank(attacker);
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.InvalidUnbondingLock.selector, lockId));
        bm.withdrawStake(lockId);
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.InvalidUnbondingLock.selector, lockId));
        bm.rebondFromUnbonded(o2, lockId);
        bm.bond(10 ether, o2);
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.InvalidUnbondingLock.selector, lockId));
        bm.rebond(lockId);
        vm.stopPrank();

        (uint256 amount, uint256 withdrawRound) = bm.getUnbondingLock(d1, lockId);
        assertEq(amount, 100 ether, "victim lock intact");
        vm.prank(d1);
        bm.withdrawStake(lockId);
        assertEq(token.balanceOf(d1), 100 ether, "victim withdraws its lock");
        assertGt(withdrawRound, 0, "lock had a withdraw round");
    }

    function test_thirdParty_ownLockWithSameIdOnlyTouchesOwnLock() public {
        uint256 lockId = _victimSetup();
        vm.startPrank(attacker);
        bm.bond(50 ether, o1);
        bm.unbond(50 ether);
        vm.stopPrank();
        assertEq(bm.getDelegator(attacker).nextUnbondingLockId, lockId + 1, "attacker's lock has the same id");
        vm.prank(attacker);
        bm.rebondFromUnbonded(o2, lockId);
        (uint256 amount,) = bm.getUnbondingLock(d1, lockId);
        assertEq(amount, 100 ether, "victim lock intact");
        assertEq(bm.getDelegator(attacker).bondedAmount, 50 ether, "attacker rebonded its own 50");
    }

    function test_thirdParty_cannotWithdrawAnothersFees() public {
        _victimSetup();
        _creditFees(o1, 1 ether, _round());
        _nextRound();
        uint256 fees = bm.pendingFees(d1);
        assertGt(fees, 0, "victim has fees");
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.InsufficientFees.selector, fees, 0));
        vm.prank(attacker);
        bm.withdrawFees(payable(attacker), fees);
        assertEq(bm.pendingFees(d1), fees, "victim fees intact");
    }

    function test_thirdParty_cannotSlashOrCreditFees() public {
        _victimSetup();
        uint256 r = _round();
        vm.startPrank(attacker);
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.NotVerifier.selector, attacker));
        bm.slash(o1, PPM, attacker);
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.OnlyTicketBroker.selector, attacker));
        bm.updateOrchestratorWithFees(o1, 1 ether, r);
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.OnlyRoundsManager.selector, attacker));
        bm.setCurrentRoundTotalActiveStake();
        vm.stopPrank();
    }

    // =========================================================================================================
    // THREATS 14: earnings rounding
    // =========================================================================================================

    /// @dev Many tiny delegators, an orchestrator that skips reward in some rounds (pools never created), uneven
    /// fees, claims at scattered rounds; then everyone leaves. Nothing is created: stake paid out ≤ bonded +
    /// minted, fees paid ≤ fees credited, every exit succeeds.
    function test_rounding_manyTinyBondsAndSkippedRewardsClaimNoMoreThanMintedPlusFees() public {
        uint256 n = 24;
        address[] memory ds = new address[](n);
        uint256 bondedIn = 1000 ether;
        _registerOrchestrator(o1, 1000 ether, 333_333, 777_777);
        for (uint256 i = 0; i < n; i++) {
            ds[i] = makeAddr(string.concat("tiny", vm.toString(i)));
            uint256 amount = i < n - 1 ? i + 1 : 12_345 ether + 7; // 1..23 wei and one whale
            _bond(ds[i], amount, o1);
            bondedIn += amount;
        }
        uint256 supply0 = token.totalSupply();
        uint256 feesCredited;
        for (uint256 r = 0; r < 10; r++) {
            _nextRound();
            if (r % 3 != 1) _reward(o1); // skips some rounds
            if (r % 2 == 0) {
                uint256 f = 1_000_003 + r * 7; // wei, deliberately uneven
                _creditFees(o1, f, _round());
                feesCredited += f;
            }
            for (uint256 i = r % 4; i < n; i += 4) {
                vm.prank(ds[i]);
                bm.claimEarnings();
            }
        }
        uint256 minted = token.totalSupply() - supply0;
        _nextRound();

        uint256 sumPending = bm.pendingStake(o1);
        for (uint256 i = 0; i < n; i++) {
            sumPending += bm.pendingStake(ds[i]);
        }
        assertLe(sumPending, bm.orchestratorTotalStake(o1), "pending stakes exceed the orchestrator's stake");
        assertLe(sumPending, bondedIn + minted, "pending stakes exceed bonded + minted");
        assertApproxEqAbs(sumPending, bondedIn + minted, (n + 1) * 12, "rounding loss beyond 1 wei per claim");

        // Everyone leaves: fees, then stake.
        uint256 feesPaid;
        address[] memory all = new address[](n + 1);
        for (uint256 i = 0; i < n; i++) {
            all[i] = ds[i];
        }
        all[n] = o1;
        uint256[] memory locks = new uint256[](n + 1);
        for (uint256 i = 0; i <= n; i++) {
            uint256 f = bm.pendingFees(all[i]);
            if (f > 0) {
                vm.prank(all[i]);
                bm.withdrawFees(payable(all[i]), f);
                feesPaid += f;
            }
            locks[i] = _unbond(all[i], bm.pendingStake(all[i]));
        }
        assertLe(feesPaid, feesCredited, "fees paid exceed fees credited");
        _advanceRounds(UNBONDING_PERIOD);
        uint256 stakeOut;
        for (uint256 i = 0; i <= n; i++) {
            uint256 balance = token.balanceOf(all[i]);
            vm.prank(all[i]);
            bm.withdrawStake(locks[i]);
            stakeOut += token.balanceOf(all[i]) - balance;
        }
        assertLe(stakeOut, bondedIn + minted, "withdrawn stake exceeds bonded + minted");
        assertLe(bm.getTotalBonded(), (n + 1) * 12, "only rounding dust left bonded");
    }

    /// @dev Found by fuzzing: 1 % rewards per round on a 1M LPT orchestrator with two small delegators that claim
    /// at different rounds. Pending stakes must never add up to more than the orchestrator's stake, else the last
    /// account to leave cannot unbond what `pendingStake` shows.
    function test_rounding_pendingStakesNeverExceedStakeSoEveryoneCanLeave() public {
        _registerOrchestrator(o1, 1_000_000 ether, 100_000, 0);
        _bond(d1, 45_544_559_446_828_514, o1);
        _bond(d2, 5_204_252_684_197_890_788, o1);
        for (uint256 r = 0; r < 8; r++) {
            _nextRound();
            _reward(o1);
            if (r == 2 || r == 3) {
                vm.prank(d1);
                bm.claimEarnings();
            }
            if (r == 0 || r == 7) {
                vm.prank(d2);
                bm.claimEarnings();
            }
            assertLe(
                bm.pendingStake(o1) + bm.pendingStake(d1) + bm.pendingStake(d2),
                bm.orchestratorTotalStake(o1),
                string.concat("pending stakes exceed the orchestrator's stake after round ", vm.toString(r))
            );
        }
        _unbond(d1, bm.pendingStake(d1));
        _unbond(d2, bm.pendingStake(d2));
        _unbond(o1, bm.pendingStake(o1)); // the last one out
        assertEq(bm.pendingStake(o1), 0, "orchestrator left with everything");
    }

    function testFuzz_rounding_pendingStakesNeverExceedOrchestratorStake(
        uint256 selfStake,
        uint256 a,
        uint256 b,
        uint8 claims
    ) public {
        selfStake = bound(selfStake, 1_000_000 ether, 3_000_000 ether);
        a = bound(a, 1, 3_000_000 ether);
        b = bound(b, 1, 3_000_000 ether);
        _registerOrchestrator(o1, selfStake, 100_000, 0);
        _bond(d1, a, o1);
        _bond(d2, b, o1);
        for (uint256 r = 0; r < 8; r++) {
            _nextRound();
            _reward(o1);
            if ((claims >> r) & 1 == 1) {
                vm.prank(d1);
                bm.claimEarnings();
            } else {
                vm.prank(d2);
                bm.claimEarnings();
            }
            assertLe(
                bm.pendingStake(o1) + bm.pendingStake(d1) + bm.pendingStake(d2),
                bm.orchestratorTotalStake(o1),
                "pending stakes exceed the orchestrator's stake"
            );
        }
    }

    function test_rounding_claimAcrossRoundsWithoutPoolsMatchesRewardedRounds() public {
        _registerOrchestrator(o1, 1000 ether, 0, 0);
        _bond(d1, 1000 ether, o1);
        _nextRound();
        _reward(o1);
        // Five rounds in which nothing touches o1: no pools are created for them.
        _advanceRounds(5);
        _reward(o1);
        uint256 expected = bm.orchestratorTotalStake(o1) / 2;
        assertApproxEqAbs(bm.pendingStake(d1), expected, 2, "claim across untouched rounds");
        vm.prank(d1);
        bm.claimEarnings();
        _nextRound();
        vm.prank(d1);
        bm.claimEarnings();
        assertApproxEqAbs(bm.getDelegator(d1).bondedAmount, expected, 2, "claimed stake");
        assertLe(bm.getDelegator(d1).bondedAmount + bm.pendingStake(o1), bm.orchestratorTotalStake(o1), "no excess");
    }

    function test_rounding_delegatorBondedBeforeAnyRewardClaimsNothingExtra() public {
        _registerOrchestrator(o1, 1000 ether, 0, 0);
        _bond(d1, 1 ether, o1);
        _advanceRounds(4);
        vm.prank(d1);
        bm.claimEarnings();
        assertEq(bm.getDelegator(d1).bondedAmount, 1 ether, "no reward was minted");
        assertEq(bm.pendingFees(d1), 0, "no fees");
    }

    function test_rounding_oneWeiStakeAgainstHugeStakeEarnsAtMostItsShare() public {
        _registerOrchestrator(o1, 1_000_000 ether, 0, PPM);
        _bond(d1, 1, o1);
        for (uint256 i = 0; i < 5; i++) {
            _nextRound();
            _reward(o1);
            _creditFees(o1, 3, _round());
            vm.prank(d1);
            bm.claimEarnings();
        }
        assertLe(bm.pendingStake(d1), 2, "1 wei of stake cannot earn more than its share");
        assertEq(bm.pendingFees(d1), 0, "1 wei of stake earns no fee wei from 3 wei of fees");
        assertLe(bm.pendingStake(d1) + bm.pendingStake(o1), bm.orchestratorTotalStake(o1), "no excess");
    }

    function testFuzz_rounding_splittingStakeAcrossAccountsGainsNothing(
        uint256 n,
        uint256 perAccount,
        uint256 rewardCut,
        uint256 feeShare,
        uint256 fees
    ) public {
        n = bound(n, 2, 8);
        perAccount = bound(perAccount, 1, 100_000 ether);
        rewardCut = bound(rewardCut, 0, PPM);
        feeShare = bound(feeShare, 0, PPM);
        fees = bound(fees, 1, 100 ether);
        _registerOrchestrator(o1, 1000 ether + 1, rewardCut, feeShare);
        address whale = makeAddr("whale");
        _bond(whale, n * perAccount, o1);
        address[] memory parts = new address[](n);
        for (uint256 i = 0; i < n; i++) {
            parts[i] = makeAddr(string.concat("part", vm.toString(i)));
            _bond(parts[i], perAccount, o1);
        }
        uint256 rounds_ = 4;
        for (uint256 r = 0; r < rounds_; r++) {
            _nextRound();
            _reward(o1);
            _creditFees(o1, fees + r, _round());
            // The split accounts claim every round, hoping rounding favours many small claims.
            for (uint256 i = 0; i < n; i++) {
                vm.prank(parts[i]);
                bm.claimEarnings();
            }
        }
        _nextRound();
        uint256 splitStake;
        uint256 splitFees;
        for (uint256 i = 0; i < n; i++) {
            splitStake += bm.pendingStake(parts[i]);
            splitFees += bm.pendingFees(parts[i]);
        }
        uint256 wholeStake = bm.pendingStake(whale);
        uint256 wholeFees = bm.pendingFees(whale);
        assertLe(splitStake, wholeStake + n, "splitting gained stake beyond n wei");
        assertLe(splitFees, wholeFees + n, "splitting gained fees beyond n wei");
        // Losing is allowed within rounding: each claim rounds each of an account's two stake parts down.
        assertApproxEqAbs(splitStake, wholeStake, n * 2 * (rounds_ + 1), "splitting lost more than rounding");
        assertApproxEqAbs(splitFees, wholeFees, n * 2 * (rounds_ + 1), "splitting lost fees beyond rounding");
    }

    // =========================================================================================================
    // THREATS 15: re-entrancy through an ETH receiver in withdrawFees
    // =========================================================================================================

    function _reentererWithFees() internal returns (FeeReenterer r, uint256 owed) {
        _registerOrchestrator(o1, 1000 ether, 0, PPM);
        r = new FeeReenterer(bm, token);
        vm.label(address(r), "FeeReenterer");
        require(token.transfer(address(r), 2000 ether), "transfer");
        r.bond(1000 ether, o1);
        _nextRound();
        _creditFees(o1, 2 ether, _round());
        _nextRound();
        owed = bm.pendingFees(address(r));
        assertEq(owed, 1 ether, "reenterer owed half the fees");
    }

    function test_reentrancy_withdrawFeesReenteringWithdrawFeesGetsNoMoreThanOwed() public {
        (FeeReenterer r, uint256 owed) = _reentererWithFees();
        r.arm(FeeReenterer.Mode.WithdrawFees, owed, address(0));
        uint256 minterBefore = address(minter).balance;
        r.withdrawFees(owed);
        assertTrue(r.reentered(), "receiver re-entered");
        assertFalse(r.reentrySucceeded(), "second withdrawal of the same fees must fail");
        assertEq(r.feesSeenDuringReentry(), 0, "fees already debited when ETH was sent");
        assertEq(r.pendingFeesSeenDuringReentry(), 0, "pending fees already zero when ETH was sent");
        assertEq(r.received(), owed, "received exactly what it was owed");
        assertEq(address(minter).balance, minterBefore - owed, "Minter paid once");
        assertEq(bm.pendingFees(address(r)), 0, "nothing left");
    }

    function test_reentrancy_withdrawFeesReenteringForTheRestGetsAtMostOwed() public {
        (FeeReenterer r, uint256 owed) = _reentererWithFees();
        r.arm(FeeReenterer.Mode.WithdrawFees, owed - owed / 3, address(0));
        r.withdrawFees(owed / 3);
        assertTrue(r.reentered(), "receiver re-entered");
        assertEq(r.feesSeenDuringReentry(), owed - owed / 3, "first withdrawal debited before the ETH call");
        assertLe(r.received(), owed, "never more than owed");
        assertEq(r.received() + bm.pendingFees(address(r)), owed, "paid + left == owed");
    }

    function test_reentrancy_withdrawFeesReenteringClaimEarningsCreditsNothingTwice() public {
        (FeeReenterer r, uint256 owed) = _reentererWithFees();
        _creditFees(o1, 2 ether, _round()); // more fees, settled by a later claim
        r.arm(FeeReenterer.Mode.ClaimEarnings, 0, address(0));
        r.withdrawFees(owed);
        assertTrue(r.reentered(), "receiver re-entered");
        _nextRound();
        assertEq(r.received(), owed, "received what it asked for");
        assertEq(r.received() + bm.pendingFees(address(r)), 2 ether, "paid + left == everything credited to it");
    }

    function test_reentrancy_withdrawFeesReenteringBondKeepsAccountingConsistent() public {
        (FeeReenterer r, uint256 owed) = _reentererWithFees();
        uint256 stake = bm.pendingStake(address(r));
        uint256 total = bm.orchestratorTotalStake(o1);
        r.arm(FeeReenterer.Mode.Bond, 100 ether, o1);
        r.withdrawFees(owed);
        assertTrue(r.reentered(), "receiver re-entered");
        assertEq(r.received(), owed, "fees paid once");
        uint256 added = r.reentrySucceeded() ? 100 ether : 0;
        assertEq(r.stakeSeenDuringReentry(), stake, "stake seen during re-entry");
        assertEq(bm.pendingStake(address(r)), stake + added, "stake == before + re-entrant bond");
        assertEq(bm.orchestratorTotalStake(o1), total + added, "orchestrator stake == before + re-entrant bond");
        assertEq(bm.pendingFees(address(r)), 0, "no fees left or created");
    }

    function test_reentrancy_withdrawFeesReenteringUnbondKeepsAccountingConsistent() public {
        (FeeReenterer r, uint256 owed) = _reentererWithFees();
        uint256 stake = bm.pendingStake(address(r));
        r.arm(FeeReenterer.Mode.Unbond, 400 ether, address(0));
        r.withdrawFees(owed);
        assertTrue(r.reentered(), "receiver re-entered");
        uint256 removed = r.reentrySucceeded() ? 400 ether : 0;
        assertEq(bm.pendingStake(address(r)), stake - removed, "stake == before - re-entrant unbond");
        assertEq(r.received(), owed, "fees paid once");
    }

    function test_withdrawFees_revertingRecipientLeavesFeesIntact() public {
        _registerOrchestrator(o1, 1000 ether, 0, PPM);
        _bond(d1, 1000 ether, o1);
        _nextRound();
        _creditFees(o1, 1 ether, _round());
        _nextRound();
        uint256 owed = bm.pendingFees(d1);
        RejectingRecipient rejecting = new RejectingRecipient();
        vm.expectRevert();
        vm.prank(d1);
        bm.withdrawFees(payable(address(rejecting)), owed);
        assertEq(bm.pendingFees(d1), owed, "fees intact after the failed payment");
    }

    // =========================================================================================================
    // THREATS 16: slashing
    // =========================================================================================================

    function test_slash_twiceCompounds() public {
        _registerOrchestrator(o1, 1000 ether, 0, 0);
        _nextRound();
        _slash(o1, 100_000, address(0));
        assertEq(bm.pendingStake(o1), 900 ether, "after the first slash");
        vm.expectEmit(address(bm));
        emit IBondingManager.Slash(o1, address(0), 90 ether, 0);
        _slash(o1, 100_000, address(0));
        assertEq(bm.pendingStake(o1), 810 ether, "second slash takes 10 % of what is left");
        assertEq(bm.orchestratorTotalStake(o1), 810 ether, "total stake");
    }

    function test_slash_duringOwnUnbondingStillReachesUnbondingStake() public {
        _registerOrchestrator(o1, 1000 ether, 0, 0);
        _nextRound();
        uint256 lockId = _unbond(o1, 1000 ether); // resigns and starts unbonding everything
        assertFalse(bm.isRegisteredOrchestrator(o1), "resigned");
        _nextRound();
        uint256 supply = token.totalSupply();
        _slash(o1, 250_000, address(0));
        (uint256 amount,) = bm.getUnbondingLock(o1, lockId);
        assertEq(amount, 750 ether, "lock cut by 25 %");
        assertEq(token.totalSupply(), supply - 250 ether, "penalty burned");
        _advanceRounds(UNBONDING_PERIOD);
        vm.prank(o1);
        bm.withdrawStake(lockId);
        assertEq(token.balanceOf(o1), 750 ether, "withdraws only what the slash left");
    }

    function test_slash_reachesSeveralLocksProportionally() public {
        _registerOrchestrator(o1, 1000 ether, 0, 0);
        _nextRound();
        uint256 a = _unbond(o1, 100 ether);
        uint256 b = _unbond(o1, 300 ether);
        vm.expectEmit(address(bm));
        emit IBondingManager.Slash(o1, address(0), 500 ether, 0);
        _slash(o1, 500_000, address(0));
        (uint256 amountA,) = bm.getUnbondingLock(o1, a);
        (uint256 amountB,) = bm.getUnbondingLock(o1, b);
        assertEq(amountA, 50 ether, "lock a halved");
        assertEq(amountB, 150 ether, "lock b halved");
        assertEq(bm.pendingStake(o1), 300 ether, "bond halved");
    }

    function test_slash_rebondAfterSlashRestoresOnlyWhatIsLeft() public {
        _registerOrchestrator(o1, 1000 ether, 0, 0);
        _nextRound();
        uint256 lockId = _unbond(o1, 400 ether);
        _slash(o1, 500_000, address(0));
        vm.prank(o1);
        bm.rebond(lockId);
        assertEq(bm.pendingStake(o1), 500 ether, "300 bonded + 200 left in the lock");
    }

    /// @dev Partial slashes shrink an account's locks through a scale; the scale must not make later locks of the
    /// same account unrepresentable (an orchestrator slashed hard several times bonds anew and unbonds).
    function test_slash_repeatedHeavySlashesDoNotBlockLaterUnbonding() public {
        _registerOrchestrator(o1, 1000 ether, 0, 0);
        for (uint256 i = 0; i < 3; i++) {
            _unbond(o1, bm.pendingStake(o1) / 2); // a lock exists at each slash
            _slash(o1, PPM - 1, address(0));
        }
        _bond(o1, 1_000_000 ether, o1);
        uint256 lockId = _unbond(o1, 500_000 ether);
        (uint256 amount,) = bm.getUnbondingLock(o1, lockId);
        assertApproxEqAbs(amount, 500_000 ether, 1, "new lock holds what was unbonded");
    }

    function test_slash_finderFeeZeroBurnsAll() public {
        bm.setFinderFee(0);
        _registerOrchestrator(o1, 1000 ether, 0, 0);
        uint256 supply = token.totalSupply();
        _slash(o1, 100_000, finder);
        assertEq(token.balanceOf(finder), 0, "no finder's fee");
        assertEq(token.totalSupply(), supply - 100 ether, "penalty burned in full");
    }

    function test_slash_finderFeeMaxPaysHalf() public {
        bm.setFinderFee(500_000);
        _registerOrchestrator(o1, 1000 ether, 0, 0);
        uint256 supply = token.totalSupply();
        vm.expectEmit(address(bm));
        emit IBondingManager.Slash(o1, finder, 100 ether, 50 ether);
        _slash(o1, 100_000, finder);
        assertEq(token.balanceOf(finder), 50 ether, "half to the finder");
        assertEq(token.totalSupply(), supply - 50 ether, "half burned");
    }

    function test_slash_zeroFinderBurnsAll() public {
        bm.setFinderFee(500_000);
        _registerOrchestrator(o1, 1000 ether, 0, 0);
        uint256 supply = token.totalSupply();
        vm.expectEmit(address(bm));
        emit IBondingManager.Slash(o1, address(0), 100 ether, 0);
        _slash(o1, 100_000, address(0));
        assertEq(token.totalSupply(), supply - 100 ether, "all burned when finder is zero");
        assertEq(token.balanceOf(address(0)), 0, "nothing sent to the zero address");
    }

    function test_slash_fullFractionLeavesSetAndDeregisters() public {
        _registerOrchestrator(o1, 1000 ether, 0, 0);
        _registerOrchestrator(o2, 500 ether, 0, 0);
        _bond(d1, 200 ether, o1);
        _nextRound();
        vm.expectEmit(address(bm));
        emit IBondingManager.OrchestratorResigned(o1, _round());
        _slash(o1, PPM, address(0));

        assertEq(bm.pendingStake(o1), 0, "no self-bond left");
        assertFalse(bm.isRegisteredOrchestrator(o1), "no longer registered");
        assertFalse(bm.isInPool(o1), "left the set");
        assertFalse(bm.isActiveOrchestrator(o1), "inactive at once");
        assertEq(bm.orchestratorTotalStake(o1), 200 ether, "only the delegated stake is left");
        _assertPoolSorted(1);
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.NotActiveOrchestrator.selector, o1));
        _reward(o1);

        // Delegators can leave or move; nobody can bond to it any more.
        _fund(d2, 1 ether);
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.NotRegisteredOrchestrator.selector, o1));
        vm.prank(d2);
        bm.bond(1 ether, o1);
        vm.prank(d1);
        bm.bond(0, o2);
        assertEq(bm.pendingStake(d1), 200 ether, "delegator moved its whole stake");
        _nextRound();
        assertFalse(bm.isActiveOrchestrator(o1), "still inactive next round");
    }

    function test_slash_fullFractionThenOrchestratorCannotRegisterWithoutStake() public {
        _registerOrchestrator(o1, 1000 ether, 0, 0);
        _slash(o1, PPM, address(0));
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.NotSelfBonded.selector, o1));
        vm.prank(o1);
        bm.registerOrchestrator(0, 0);
    }

    function test_slash_includesRewardsNotYetClaimed() public {
        _registerOrchestrator(o1, 1000 ether, 0, 0);
        _nextRound();
        _reward(o1);
        _nextRound();
        uint256 stake = bm.pendingStake(o1);
        assertGt(stake, 1000 ether, "earned a reward");
        vm.expectEmit(address(bm));
        emit IBondingManager.Slash(o1, address(0), stake / 2, 0);
        _slash(o1, 500_000, address(0));
        assertApproxEqAbs(bm.pendingStake(o1), stake - stake / 2, 1, "half of the stake incl. rewards");
    }

    /// @dev A slash takes LPT, not fees already earned: fees of an earlier round credited after the slash still
    /// reach all of the stake that was bonded in that round.
    function test_slash_keepsLateFeesOfEarlierRoundsOnSlashedStake() public {
        _registerOrchestrator(o1, 1000 ether, 0, 500_000);
        _nextRound();
        uint256 ticketRound = _round();
        _nextRound();
        _slash(o1, 500_000, address(0));
        _creditFees(o1, 1 ether, ticketRound);
        assertEq(bm.pendingFees(o1), 1 ether, "the only staker of the ticket's round gets all its fees");
    }

    function test_slash_twiceAroundTicketRoundKeepsLateFeesOnSlashedStake() public {
        _registerOrchestrator(o1, 1000 ether, 0, PPM);
        _bond(d1, 1000 ether, o1);
        _nextRound();
        _slash(o1, 100_000, address(0)); // before the ticket's round: o1 900
        _nextRound();
        uint256 ticketRound = _round(); // o1 900, d1 1000 earning
        _nextRound();
        _slash(o1, 100_000, address(0)); // after it
        _creditFees(o1, 1 ether, ticketRound);
        assertApproxEqAbs(bm.pendingFees(o1), uint256(1 ether) * 900 / 1900, 2, "o1's 900 LPT of the ticket's round");
        assertApproxEqAbs(bm.pendingFees(d1), uint256(1 ether) * 1000 / 1900, 2, "d1's 1000 LPT of the ticket's round");
    }

    function test_slash_onlyRegisteredVerifiersCanSlash() public {
        _registerOrchestrator(o1, 1000 ether, 0, 0);
        // Not even the owner, unless registered.
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.NotVerifier.selector, address(this)));
        bm.slash(o1, 1, address(0));
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.NotVerifier.selector, o1));
        vm.prank(o1);
        bm.slash(o1, 1, address(0));
        bm.setVerifier(address(this), true);
        bm.slash(o1, 1, address(0));
        assertLt(bm.pendingStake(o1), 1000 ether, "registered verifier slashed");
    }

    function testFuzz_slash_penaltyConservesTokens(uint256 fraction, uint256 fee, uint256 bonded, uint256 locked)
        public
    {
        fraction = bound(fraction, 0, PPM);
        fee = bound(fee, 0, 500_000);
        bonded = bound(bonded, 1, 1_000_000 ether);
        locked = bound(locked, 0, bonded - 1);
        bm.setFinderFee(fee);
        _registerOrchestrator(o1, bonded, 0, 0);
        uint256 lockId;
        if (locked > 0) lockId = _unbond(o1, locked);
        uint256 supply = token.totalSupply();
        uint256 bmBalance = token.balanceOf(address(bm));

        _slash(o1, fraction, finder);

        uint256 penalty = fraction * bonded / PPM;
        uint256 finderReward = token.balanceOf(finder);
        uint256 burned = supply - token.totalSupply();
        assertApproxEqAbs(penalty, bmBalance - token.balanceOf(address(bm)), 2, "penalty ~ fraction * exposed stake");
        assertEq(finderReward + burned, bmBalance - token.balanceOf(address(bm)), "finder + burned == taken");
        assertLe(finderReward, (finderReward + burned) * fee / PPM, "finder's fee bounded by its rate");
        uint256 lockLeft;
        if (locked > 0) (lockLeft,) = bm.getUnbondingLock(o1, lockId);
        assertLe(bm.pendingStake(o1) + lockLeft, token.balanceOf(address(bm)), "what is left is backed");
        assertEq(bm.pendingStake(o1) + lockLeft, bonded - (finderReward + burned), "left == exposed - taken");
    }
}
