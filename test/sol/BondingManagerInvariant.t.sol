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

    /// @notice Stake: total bonded == Σ pending stakes (within rounding and unowned rewards) == Σ orchestrator
    /// stakes; each orchestrator's delegators hold no more than its stake; everything held or taken out ≤ bonded in
    /// + minted (claimed rewards ≤ minted); the BondingManager holds total bonded + unbonding.
    function invariant_stakeAccountingConserved() public view {
        _checkTotalBondedMatchesPendingStakes();
        _checkOrchestratorStakesSumToTotalBonded();
        _checkDelegatorsWithinOrchestratorStake();
        _checkClaimedRewardsNotAboveMinted();
        _checkBondingManagerSolvent();
    }

    /// @notice Fees: paid + claimable ≤ credited, nothing lost beyond rounding, and the Minter can pay them.
    function invariant_feesPaidPlusClaimableEqualCreditedWithinRounding() public view {
        _checkFeesNotAboveCredited();
    }

    /// @notice No account's stake, fees or delegate change except by its own action, a reward or fee credit of
    /// its delegate, or a slash of itself; the active set stays sorted, consistent and within its maximum.
    function invariant_noForeignChangesAndActiveSetSorted() public view {
        _checkNoForeignChanges();
        _checkActiveSet();
    }
}
