// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {BondingChecks} from "./handlers/BondingChecks.sol";
import {BondingHandler} from "./handlers/BondingHandler.sol";

/// @notice Invariants of the BondingManager under random sequences of every user, orchestrator, broker and
/// verifier action (THREATS 12, 13, 14, 16), driven by BondingHandler.
contract BondingManagerInvariantTest is BondingChecks {
    function setUp() public override {
        super.setUp();
        _setUpHandler();
        targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](14);
        selectors[0] = BondingHandler.bond.selector;
        selectors[1] = BondingHandler.moveDelegation.selector;
        selectors[2] = BondingHandler.unbond.selector;
        selectors[3] = BondingHandler.rebond.selector;
        selectors[4] = BondingHandler.rebondFromUnbonded.selector;
        selectors[5] = BondingHandler.withdrawStake.selector;
        selectors[6] = BondingHandler.claimEarnings.selector;
        selectors[7] = BondingHandler.withdrawFees.selector;
        selectors[8] = BondingHandler.reward.selector;
        selectors[9] = BondingHandler.creditFees.selector;
        selectors[10] = BondingHandler.slash.selector;
        selectors[11] = BondingHandler.setCuts.selector;
        selectors[12] = BondingHandler.nextRound.selector;
        selectors[13] = BondingHandler.advanceBlocks.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    function invariant_totalBondedEqualsSumOfPendingStakesWithinRounding() public view {
        _checkTotalBondedMatchesPendingStakes();
    }

    function invariant_orchestratorStakesSumToTotalBonded() public view {
        _checkOrchestratorStakesSumToTotalBonded();
    }

    function invariant_delegatorStakesWithinTheirOrchestratorsStake() public view {
        _checkDelegatorsWithinOrchestratorStake();
    }

    function invariant_claimedRewardsNotAboveMinted() public view {
        _checkClaimedRewardsNotAboveMinted();
    }

    function invariant_feesPaidPlusClaimableNotAboveCredited() public view {
        _checkFeesNotAboveCredited();
    }

    function invariant_bondingManagerHoldsBondedPlusUnbonding() public view {
        _checkBondingManagerSolvent();
    }

    function invariant_stakeChangesOnlyByOwnActionRewardOrSlash() public view {
        _checkNoForeignChanges();
    }

    function invariant_activeSetSortedWithinMaximum() public view {
        _checkActiveSet();
    }
}
