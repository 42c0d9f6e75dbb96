// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {BondingChecks} from "./handlers/BondingChecks.sol";
import {IBondingManager} from "../../contracts/interfaces/IBondingManager.sol";

/// @notice Fuzz tests of amounts, cuts and fractions, and seeded random sequences of every action checked against
/// the accounting invariants after each step (THREATS 12).
contract BondingManagerFuzzTest is BondingChecks {
    address internal o1;
    address internal d1;

    function setUp() public override {
        super.setUp();
        o1 = makeAddr("orchestrator1");
        d1 = makeAddr("delegator1");
    }

    function testFuzz_bond_unbondLeavesExactRemainderAndLock(uint256 bonded, uint256 unbonded) public {
        bonded = bound(bonded, 1, 1_000_000 ether);
        unbonded = bound(unbonded, 1, bonded);
        _registerOrchestrator(o1, 1000 ether, 0, 0);
        _bond(d1, bonded, o1);
        _nextRound();
        uint256 lockId = _unbond(d1, unbonded);
        (uint256 locked,) = bm.getUnbondingLock(d1, lockId);
        assertEq(locked, unbonded, "lock");
        assertEq(bm.pendingStake(d1), bonded - unbonded, "remainder");
        assertEq(bm.orchestratorTotalStake(o1), 1000 ether + bonded - unbonded, "orchestrator stake");
        assertEq(bm.getTotalBonded(), 1000 ether + bonded - unbonded, "total bonded");
        assertEq(bm.getDelegator(d1).delegate, unbonded == bonded ? address(0) : o1, "delegate");
    }

    function testFuzz_unbondThenRebond_restoresExactStake(uint256 bonded, uint256 unbonded, uint256 roundsLater)
        public
    {
        bonded = bound(bonded, 2, 1_000_000 ether);
        unbonded = bound(unbonded, 1, bonded - 1);
        roundsLater = bound(roundsLater, 0, 10);
        _registerOrchestrator(o1, 1000 ether, 0, 0);
        _bond(d1, bonded, o1);
        uint256 lockId = _unbond(d1, unbonded);
        _advanceRounds(roundsLater);
        vm.prank(d1);
        bm.rebond(lockId);
        assertEq(bm.pendingStake(d1), bonded, "stake restored");
        assertEq(bm.getTotalBonded(), 1000 ether + bonded, "total bonded restored");
    }

    function testFuzz_registerOrchestrator_acceptsCutsUpToPPMOnly(uint256 rewardCut, uint256 feeShare) public {
        rewardCut = bound(rewardCut, 0, 2 * PPM);
        feeShare = bound(feeShare, 0, 2 * PPM);
        _bond(o1, 1000 ether, o1);
        if (rewardCut > PPM) {
            vm.expectRevert(abi.encodeWithSelector(IBondingManager.InvalidCut.selector, rewardCut));
        } else if (feeShare > PPM) {
            vm.expectRevert(abi.encodeWithSelector(IBondingManager.InvalidCut.selector, feeShare));
        }
        vm.prank(o1);
        bm.registerOrchestrator(rewardCut, feeShare);
        if (rewardCut <= PPM && feeShare <= PPM) {
            (uint256 rc, uint256 fs) = bm.cutsForRound(o1, _round());
            assertEq(rc, rewardCut, "rewardCut");
            assertEq(fs, feeShare, "feeShare");
        }
    }

    function testFuzz_reward_splitMatchesRewardCut(uint256 rewardCut, uint256 selfStake, uint256 delegated) public {
        rewardCut = bound(rewardCut, 0, PPM);
        selfStake = bound(selfStake, 1 ether, 1_000_000 ether);
        delegated = bound(delegated, 1, 1_000_000 ether);
        _registerOrchestrator(o1, selfStake, rewardCut, 0);
        _bond(d1, delegated, o1);
        _nextRound();
        uint256 supply = token.totalSupply();
        _reward(o1);
        uint256 r = token.totalSupply() - supply;
        uint256 total = selfStake + delegated;
        uint256 toDelegators = r - r * rewardCut / PPM;
        uint256 expectedDelegator = delegated + toDelegators * delegated / total;
        assertLe(bm.pendingStake(d1), expectedDelegator, "delegator share rounds down");
        assertApproxEqAbs(bm.pendingStake(d1), expectedDelegator, 2, "delegator share");
        // The orchestrator takes the rounding dust of the pool's share (rounded up so claims never exceed it).
        assertApproxEqAbs(
            bm.pendingStake(o1), selfStake + r * rewardCut / PPM + toDelegators * selfStake / total, 2, "orchestrator"
        );
        assertLe(bm.pendingStake(o1) + bm.pendingStake(d1), total + r, "no more than minted");
        assertApproxEqAbs(bm.pendingStake(o1) + bm.pendingStake(d1), total + r, 2, "nothing lost beyond rounding");
    }

    function testFuzz_fees_splitMatchesFeeShare(uint256 feeShare, uint256 fees, uint256 selfStake, uint256 delegated)
        public
    {
        feeShare = bound(feeShare, 0, PPM);
        fees = bound(fees, 1, 1_000 ether);
        selfStake = bound(selfStake, 1 ether, 1_000_000 ether);
        delegated = bound(delegated, 1, 1_000_000 ether);
        _registerOrchestrator(o1, selfStake, 0, feeShare);
        _bond(d1, delegated, o1);
        _nextRound();
        _creditFees(o1, fees, _round());
        uint256 toDelegators = fees * feeShare / PPM;
        uint256 expectedDelegator = toDelegators * delegated / (selfStake + delegated);
        assertLe(bm.pendingFees(d1), expectedDelegator, "delegator fees round down");
        assertApproxEqAbs(bm.pendingFees(d1), expectedDelegator, 2, "delegator fees");
        assertLe(bm.pendingFees(o1) + bm.pendingFees(d1), fees, "no more than credited");
        assertApproxEqAbs(bm.pendingFees(o1) + bm.pendingFees(d1), fees, 2, "nothing lost beyond rounding");
    }

    function testFuzz_slash_fractionTakesProportionalPenalty(uint256 fraction, uint256 selfStake) public {
        fraction = bound(fraction, 0, PPM);
        selfStake = bound(selfStake, 1, 1_000_000 ether);
        _registerOrchestrator(o1, selfStake, 0, 0);
        uint256 supply = token.totalSupply();
        _slash(o1, fraction, address(0));
        uint256 penalty = selfStake * fraction / PPM;
        assertEq(bm.pendingStake(o1), selfStake - penalty, "stake after slash");
        assertEq(token.totalSupply(), supply - penalty, "penalty burned");
        assertEq(bm.isRegisteredOrchestrator(o1), fraction < PPM, "registered unless fully slashed");
    }

    // =========================================================================================================
    // THREATS 12: random sequences of every action keep the accounting exact
    // =========================================================================================================

    /// @dev Runs `steps` handler actions chosen from `seed`, checking every invariant after each.
    function _runSequence(uint256 seed, uint256 steps, bool rewardFirstEachRound) internal {
        _setUpHandler();
        if (rewardFirstEachRound) {
            for (uint256 i = 0; i < 3; i++) {
                handler.reward(i);
            }
        }
        for (uint256 k = 0; k < steps; k++) {
            uint256 s = uint256(keccak256(abi.encode(seed, k)));
            uint256 a = s >> 8;
            uint256 b = s >> 72;
            uint256 c = s >> 136;
            uint256 op = s % 13;
            if (op == 0) {
                handler.bond(a, b, c);
            } else if (op == 1) {
                handler.moveDelegation(a, b, c);
            } else if (op == 2) {
                handler.unbond(a, c);
            } else if (op == 3) {
                handler.rebond(a, b);
            } else if (op == 4) {
                handler.rebondFromUnbonded(a, b, c);
            } else if (op == 5) {
                handler.withdrawStake(a, b);
            } else if (op == 6) {
                handler.claimEarnings(a);
            } else if (op == 7) {
                handler.withdrawFees(a, c);
            } else if (op == 8) {
                handler.reward(a);
            } else if (op == 9) {
                handler.creditFees(a, c, b);
            } else if (op == 10 && !rewardFirstEachRound) {
                handler.slash(a, c, b);
            } else if (op == 11) {
                handler.setCuts(a, b % (PPM + 1), c % (PPM + 1));
            } else if (op == 12 || op == 10) {
                handler.nextRound();
                if (rewardFirstEachRound) {
                    for (uint256 i = 0; i < 3; i++) {
                        handler.reward(i);
                    }
                }
            }
            _checkAll();
        }
    }

    function testFuzz_sequence_accountingHoldsAfterEveryStep(uint256 seed) public {
        _runSequence(seed, 40, false);
    }

    /// @dev When every orchestrator calls reward before any stake leaves in a round, no reward is minted for
    /// departed stake, so total bonded and the sum of pending stakes differ by rounding only.
    function testFuzz_sequence_rewardsFirstEachRoundTotalBondedEqualsPendingWithinRounding(uint256 seed) public {
        _runSequence(seed, 40, true);
        assertApproxEqAbs(
            bm.getTotalBonded(), handler.totalPendingStake(), _roundingSlack(), "total bonded == sum of pending stakes"
        );
    }
}
