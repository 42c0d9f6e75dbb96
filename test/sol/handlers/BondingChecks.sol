// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Fixture} from "../utils/Fixture.sol";
import {BondingHandler} from "./BondingHandler.sol";

/// @notice Deploys the BondingHandler over the fixture (wired as TicketBroker and verifier, actors funded) and
/// holds the accounting checks shared by the invariant test and the sequence fuzz tests (THREATS 12).
abstract contract BondingChecks is Fixture {
    uint256 internal constant FUNDS_PER_ACTOR = 50_000 ether;

    BondingHandler internal handler;

    function _setUpHandler() internal {
        handler = new BondingHandler(token, rounds, minter, bm);
        vm.label(address(handler), "BondingHandler");
        uint256 actors = handler.actorCount();
        require(token.transfer(address(handler), actors * FUNDS_PER_ACTOR), "fund handler");
        handler.init(FUNDS_PER_ACTOR);
        bm.setTicketBroker(address(handler));
        bm.setVerifier(address(handler), true);
        _nextRound();
    }

    /// @dev Rounding slack of `getTotalBonded() - Σ pendingStake`: every reward and every claim rounds each
    /// delegator's share down (at most a wei per stake part, two parts per account), never up.
    function _roundingSlack() internal view returns (uint256) {
        return (handler.ghostRewardCalls() + handler.ghostStakeCalls() + 1) * handler.actorCount() * 2;
    }

    /// @notice Total bonded == Σ pending stakes, minus rounding and minus rewards minted for stake that left its
    /// orchestrator earlier in the same round (no owner by the spec's "stake at round start" rule).
    function _checkTotalBondedMatchesPendingStakes() internal view {
        uint256 pending = handler.totalPendingStake();
        uint256 total = bm.getTotalBonded();
        assertLe(pending, total, "sum of pending stakes exceeds total bonded");
        assertLe(
            total - pending,
            handler.ghostUnownedRewardBound() + _roundingSlack(),
            "total bonded exceeds pending stakes by more than rounding + unowned rewards"
        );
    }

    function _checkOrchestratorStakesSumToTotalBonded() internal view {
        uint256 sum;
        for (uint256 i = 0; i < 3; i++) {
            sum += bm.orchestratorTotalStake(handler.orchestratorAt(i));
        }
        assertEq(sum, bm.getTotalBonded(), "orchestrator stakes do not add up to total bonded");
    }

    function _checkDelegatorsWithinOrchestratorStake() internal view {
        uint256 n = handler.actorCount();
        for (uint256 k = 0; k < 3; k++) {
            address o = handler.orchestratorAt(k);
            uint256 sum;
            for (uint256 i = 0; i < n; i++) {
                address a = handler.actors(i);
                if (bm.getDelegator(a).delegate == o) sum += bm.pendingStake(a);
            }
            assertLe(sum, bm.orchestratorTotalStake(o), "delegators' stakes exceed their orchestrator's stake");
        }
    }

    /// @notice Everything accounts hold or took out ≤ everything put in plus everything minted.
    function _checkClaimedRewardsNotAboveMinted() internal view {
        uint256 out =
            handler.totalPendingStake() + handler.totalLocked() + handler.ghostWithdrawn() + handler.ghostSlashed();
        assertLe(out, handler.ghostBondedIn() + handler.ghostMinted(), "claimed rewards exceed minted");
    }

    function _checkFeesNotAboveCredited() internal view {
        uint256 claimable = handler.totalPendingFees();
        uint256 credited = handler.ghostFeesCredited();
        uint256 paid = handler.ghostFeesPaid();
        assertLe(paid + claimable, credited, "fees paid + claimable exceed fees credited");
        // Nor are fees lost: each credit rounds each delegator's share down by a wei, each claim a wei per part,
        // and the share of stake nobody owns (see BondingHandler) stays in the Minter.
        uint256 slack = (handler.ghostFeeCredits() + handler.ghostStakeCalls() + 1) * handler.actorCount() * 2;
        assertLe(
            credited - paid - claimable,
            handler.ghostUnownedFeeBound() + slack,
            "fees credited to delegators were lost (neither paid nor claimable)"
        );
        assertEq(address(minter).balance, credited - paid, "Minter ETH != credited - paid");
        assertGe(address(minter).balance, claimable, "Minter cannot pay the claimable fees");
    }

    function _checkBondingManagerSolvent() internal view {
        assertGe(
            token.balanceOf(address(bm)),
            bm.getTotalBonded() + handler.totalLocked(),
            "BondingManager holds less LPT than bonded + unbonding"
        );
    }

    function _checkNoForeignChanges() internal view {
        assertEq(handler.violation(), "", "per-action check failed");
    }

    function _checkActiveSet() internal view {
        uint256 size = bm.getOrchestratorPoolSize();
        assertLe(size, bm.maxActiveOrchestrators(), "pool larger than its maximum");
        _assertPoolSorted(size);
        address[] memory members = _pool();
        for (uint256 i = 0; i < members.length; i++) {
            assertTrue(bm.isRegisteredOrchestrator(members[i]), "unregistered member in the pool");
        }
        assertLe(minter.currentMintedTokens(), minter.currentMintableTokens(), "round minted beyond its mintable");
    }

    function _checkAll() internal view {
        _checkTotalBondedMatchesPendingStakes();
        _checkOrchestratorStakesSumToTotalBonded();
        _checkDelegatorsWithinOrchestratorStake();
        _checkClaimedRewardsNotAboveMinted();
        _checkFeesNotAboveCredited();
        _checkBondingManagerSolvent();
        _checkNoForeignChanges();
        _checkActiveSet();
    }
}
