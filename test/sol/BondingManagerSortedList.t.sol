// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Fixture} from "./utils/Fixture.sol";
import {IBondingManager} from "../../contracts/interfaces/IBondingManager.sol";

/// @notice THREATS 17: the active set's sorted list under wrong, hostile and stale hints with a full set of 300.
/// The list must stay sorted and complete, a hostile hint must cost no more than the walk over the distance the
/// node actually moves (not the list size), and a full set evicts its lowest member for a bigger newcomer.
contract BondingManagerSortedListTest is Fixture {
    uint256 internal constant SET_SIZE = 300;
    uint256 internal constant BASE_STAKE = 1000 ether;
    /// @dev Extra gas a hostile hint may cost over a correct one when the node moves nowhere: a few cold reads
    /// of the hinted nodes (2_100 gas each) — far below a walk of the list (≥ 4_000 gas per node).
    uint256 internal constant HOSTILE_HINT_OVERHEAD = 15_000;

    address[] internal members; // members[i] has rank i at setup (0 = most stake)
    address internal outsider; // registered, too little stake to be in the full set
    address internal stranger; // never bonded

    function setUp() public override {
        super.setUp();
        bm.setMaxActiveOrchestrators(SET_SIZE);
        for (uint256 i = 0; i < SET_SIZE; i++) {
            // Addresses in hash order, unrelated to the stake order.
            address m = address(uint160(uint256(keccak256(abi.encode("member", i)))));
            members.push(m);
            _registerOrchestrator(m, _stakeOfRank(i), 0, 0);
        }
        outsider = makeAddr("outsider");
        _registerOrchestrator(outsider, 1 ether, 0, 0);
        stranger = makeAddr("stranger");
        _nextRound();
        _assertPoolSorted(SET_SIZE);
    }

    /// @dev Distinct stakes 1 LPT apart: rank 0 has BASE_STAKE + 300 LPT, rank 299 BASE_STAKE + 1 LPT.
    function _stakeOfRank(uint256 i) internal pure returns (uint256) {
        return BASE_STAKE + (SET_SIZE - i) * 1 ether;
    }

    function _rand(uint256 seed, uint256 salt) internal pure returns (uint256) {
        return uint256(keccak256(abi.encode(seed, salt)));
    }

    /// @notice The correct `(prev, next)` for `member` with `newStake`, in the list without `member`.
    function _correctHint(address member, uint256 newStake) internal view returns (address prev, address next) {
        address cur = bm.getFirstOrchestratorInPool();
        while (cur != address(0)) {
            if (cur != member) {
                if (bm.orchestratorTotalStake(cur) < newStake) return (prev, cur);
                prev = cur;
            }
            cur = bm.getNextOrchestratorInPool(cur);
        }
        return (prev, address(0));
    }

    enum Hint {
        Random,
        Self,
        NonMember,
        Reversed,
        Ends,
        Zero
    }

    function _hostileHint(Hint kind, address member, uint256 seed) internal view returns (address, address) {
        if (kind == Hint.Random) {
            return (address(uint160(_rand(seed, 1))), address(uint160(_rand(seed, 2))));
        }
        if (kind == Hint.Self) return (member, member);
        if (kind == Hint.NonMember) return (outsider, stranger);
        if (kind == Hint.Reversed) {
            return (bm.getNextOrchestratorInPool(member), bm.getPrevOrchestratorInPool(member));
        }
        if (kind == Hint.Ends) return (bm.getLastOrchestratorInPool(), bm.getFirstOrchestratorInPool());
        return (address(0), address(0));
    }

    function _topUp(address member, uint256 amount, address prev, address next) internal returns (uint256 gasUsed) {
        _fund(member, amount);
        vm.prank(member);
        uint256 g = gasleft();
        bm.bondWithHint(amount, member, address(0), address(0), prev, next);
        gasUsed = g - gasleft();
    }

    function _unbondHinted(address member, uint256 amount, address prev, address next) internal {
        vm.prank(member);
        bm.unbondWithHint(amount, prev, next);
    }

    /// @dev 16 random stake changes of random members (top-ups, unbonds, delegations moving between members), each
    /// with hints of `kind`; the full list is walked after each.
    function _runHostileOps(Hint kind, uint256 seed) internal {
        address d = makeAddr("mover");
        _bond(d, 20 ether, members[100]);
        for (uint256 k = 0; k < 16; k++) {
            uint256 s = _rand(seed, k);
            address m = members[s % SET_SIZE];
            uint256 amount = 1 + _rand(s, 7) % 40 ether;
            (address prev, address next) = _hostileHint(kind, m, s);
            uint256 op = k % 3;
            if (op == 0) {
                _topUp(m, amount, prev, next);
            } else if (op == 1) {
                _unbondHinted(m, amount, prev, next);
            } else {
                address from = bm.getDelegator(d).delegate;
                if (from == m) m = members[(s + 1) % SET_SIZE];
                (address oldPrev, address oldNext) = _hostileHint(kind, from, s + 1);
                vm.prank(d);
                bm.bondWithHint(0, m, oldPrev, oldNext, prev, next);
            }
            _assertPoolSorted(SET_SIZE);
        }
    }

    // =========================================================================================================
    // Hostile hints keep the list sorted
    // =========================================================================================================

    function test_hints_randomAddressHintsKeepFullSetSorted() public {
        _runHostileOps(Hint.Random, 1);
    }

    function test_hints_selfHintsKeepFullSetSorted() public {
        _runHostileOps(Hint.Self, 2);
    }

    function test_hints_nonMemberHintsKeepFullSetSorted() public {
        _runHostileOps(Hint.NonMember, 3);
    }

    function test_hints_reversedHintsKeepFullSetSorted() public {
        _runHostileOps(Hint.Reversed, 4);
    }

    function test_hints_endsOfListHintsKeepFullSetSorted() public {
        _runHostileOps(Hint.Ends, 5);
    }

    function test_hints_zeroHintsKeepFullSetSorted() public {
        _runHostileOps(Hint.Zero, 6);
    }

    function test_hints_staleHintsKeepFullSetSorted() public {
        for (uint256 k = 0; k < 12; k++) {
            address m = members[_rand(7, k) % SET_SIZE];
            uint256 amount = 1 + _rand(8, k) % 30 ether;
            (address prev, address next) = _correctHint(m, bm.orchestratorTotalStake(m) + amount);
            // Someone else moves first, invalidating the hint (often moving into the hinted spot).
            address other = prev != address(0) ? prev : next;
            if (other != address(0) && other != m) _topUp(other, 2 ether, address(0), address(0));
            _topUp(m, amount, prev, next);
            _assertPoolSorted(SET_SIZE);
        }
    }

    function test_hints_hintsForMovedDelegationKeepBothDelegatesSorted() public {
        address d = makeAddr("bigDelegator");
        _bond(d, 150 ether, members[0]); // members[0] far ahead
        // Move it to the lowest member with both pairs of hints hostile (each the other's correct hint).
        address to = members[SET_SIZE - 1];
        (address oldPrev, address oldNext) = _correctHint(members[0], bm.orchestratorTotalStake(members[0]) - 150 ether);
        (address newPrev, address newNext) = _correctHint(to, bm.orchestratorTotalStake(to) + 150 ether);
        vm.prank(d);
        bm.bondWithHint(0, to, newPrev, newNext, oldPrev, oldNext);
        _assertPoolSorted(SET_SIZE);
        assertEq(bm.orchestratorTotalStake(to), _stakeOfRank(SET_SIZE - 1) + 150 ether, "new delegate stake");
    }

    function test_hints_correctHintsWork() public {
        for (uint256 k = 0; k < 10; k++) {
            address m = members[_rand(9, k) % SET_SIZE];
            uint256 amount = 1 + _rand(10, k) % 50 ether;
            (address prev, address next) = _correctHint(m, bm.orchestratorTotalStake(m) + amount);
            _topUp(m, amount, prev, next);
            assertEq(bm.getPrevOrchestratorInPool(m), prev, "placed after the hinted prev");
            _assertPoolSorted(SET_SIZE);
        }
    }

    // =========================================================================================================
    // Gas: bounded by the distance moved, not by the list size
    // =========================================================================================================

    function test_hints_hostileHintTopUpWithoutMoveCostsAboutTheSameAsCorrectHint() public {
        // Warm the shared state (token balances, totals, round data) so each measurement pays only for its node.
        _topUp(members[5], 1, bm.getPrevOrchestratorInPool(members[5]), bm.getNextOrchestratorInPool(members[5]));

        address m = members[150];
        uint256 correct = _topUp(m, 1, bm.getPrevOrchestratorInPool(m), bm.getNextOrchestratorInPool(m));
        Hint[6] memory kinds = [Hint.Random, Hint.Self, Hint.NonMember, Hint.Reversed, Hint.Ends, Hint.Zero];
        for (uint256 k = 0; k < kinds.length; k++) {
            address h = members[160 + 10 * k]; // a fresh (cold) member each time, all mid-list
            (address prev, address next) = _hostileHint(kinds[k], h, k);
            uint256 hostile = _topUp(h, 1, prev, next);
            assertLe(
                hostile,
                correct + HOSTILE_HINT_OVERHEAD,
                string.concat("hostile hint kind ", vm.toString(k), " costs more than a correct hint")
            );
        }
        _assertPoolSorted(SET_SIZE);
    }

    function test_hints_hostileHintCostScalesWithDistanceNotListSize() public {
        _topUp(members[5], 1, bm.getPrevOrchestratorInPool(members[5]), bm.getNextOrchestratorInPool(members[5]));
        // Moving up 5 places near the top, 5 places near the bottom, and 50 places, all with hostile hints.
        uint256 nearTop = _topUp(members[20], 5 ether + 1, members[SET_SIZE - 1], members[0]);
        uint256 nearBottom = _topUp(members[290], 5 ether + 1, members[SET_SIZE - 1], members[0]);
        uint256 far = _topUp(members[250], 50 ether + 1, members[SET_SIZE - 1], members[0]);
        _assertPoolSorted(SET_SIZE);
        assertApproxEqAbs(nearTop, nearBottom, 15_000, "a 5-place move costs the same anywhere in the list");
        assertGt(far, nearBottom, "a longer move walks more nodes");
        assertLe(far - nearBottom, 45 * 8_000, "walk cost per node moved is bounded");
    }

    function test_hints_correctHintMoveCostIsIndependentOfDistance() public {
        _topUp(members[5], 1, bm.getPrevOrchestratorInPool(members[5]), bm.getNextOrchestratorInPool(members[5]));
        (address p1, address n1) = _correctHint(members[290], bm.orchestratorTotalStake(members[290]) + 5 ether + 1);
        uint256 short = _topUp(members[290], 5 ether + 1, p1, n1);
        (address p2, address n2) = _correctHint(members[250], bm.orchestratorTotalStake(members[250]) + 200 ether + 1);
        uint256 long = _topUp(members[250], 200 ether + 1, p2, n2);
        assertApproxEqAbs(short, long, 15_000, "a correct hint costs O(1) whatever the distance");
        _assertPoolSorted(SET_SIZE);
    }

    function test_hints_newcomerWithCorrectHintCostsTheSameAtAnyPosition() public {
        bm.setMaxActiveOrchestrators(SET_SIZE + 10);
        address high = makeAddr("newcomerHigh");
        address low = makeAddr("newcomerLow");
        uint256 highStake = _stakeOfRank(10) + 0.5 ether;
        uint256 lowStake = _stakeOfRank(250) + 0.5 ether;
        _bond(high, highStake, high);
        _bond(low, lowStake, low);
        _topUp(members[5], 1, bm.getPrevOrchestratorInPool(members[5]), bm.getNextOrchestratorInPool(members[5]));

        vm.prank(high);
        uint256 g = gasleft();
        bm.registerOrchestratorWithHint(0, 0, members[9], members[10]);
        uint256 gasHigh = g - gasleft();
        vm.prank(low);
        g = gasleft();
        bm.registerOrchestratorWithHint(0, 0, members[249], members[250]);
        uint256 gasLow = g - gasleft();

        assertApproxEqAbs(gasHigh, gasLow, 15_000, "hinted insert is O(1) at any position");
        assertEq(bm.getNextOrchestratorInPool(members[9]), high, "high placed");
        assertEq(bm.getNextOrchestratorInPool(members[249]), low, "low placed");
        _assertPoolSorted(SET_SIZE + 2);
    }

    // =========================================================================================================
    // Full set: eviction
    // =========================================================================================================

    function test_fullSet_newcomerAboveLowestEvictsIt() public {
        address lowest = members[SET_SIZE - 1];
        assertEq(bm.getLastOrchestratorInPool(), lowest, "lowest member");
        address newcomer = makeAddr("newcomer");
        _bond(newcomer, _stakeOfRank(SET_SIZE - 1) + 1, newcomer);
        uint256 r = _round();

        vm.expectEmit(address(bm));
        emit IBondingManager.OrchestratorDeactivated(lowest, r + 1);
        vm.prank(newcomer);
        bm.registerOrchestratorWithHint(0, 0, address(1), address(2)); // and a junk hint

        assertTrue(bm.isInPool(newcomer), "newcomer joined");
        assertFalse(bm.isInPool(lowest), "lowest evicted");
        assertTrue(bm.isRegisteredOrchestrator(lowest), "evicted member stays registered");
        assertTrue(bm.isActiveOrchestrator(lowest), "evicted member active until the round ends");
        assertEq(bm.getLastOrchestratorInPool(), newcomer, "newcomer is now the lowest");
        _assertPoolSorted(SET_SIZE);

        _nextRound();
        assertFalse(bm.isActiveOrchestrator(lowest), "evicted member inactive next round");
        assertTrue(bm.isActiveOrchestrator(newcomer), "newcomer active next round");
        assertEq(bm.currentRoundTotalActiveStake(), bm.nextRoundTotalActiveStake(), "snapshot == list total");
    }

    function test_fullSet_newcomerNotAboveLowestStaysOut() public {
        address newcomer = makeAddr("newcomer");
        _bond(newcomer, _stakeOfRank(SET_SIZE - 1), newcomer); // equal to the lowest: no eviction
        vm.prank(newcomer);
        bm.registerOrchestrator(0, 0);
        assertTrue(bm.isRegisteredOrchestrator(newcomer), "registered");
        assertFalse(bm.isInPool(newcomer), "not in the full set");
        assertTrue(bm.isInPool(members[SET_SIZE - 1]), "lowest stays");
        _assertPoolSorted(SET_SIZE);
    }

    function test_fullSet_outsiderGainingStakeAboveLowestEvictsIt() public {
        address lowest = members[SET_SIZE - 1];
        assertFalse(bm.isInPool(outsider), "outsider starts outside");
        _bond(makeAddr("backer"), _stakeOfRank(SET_SIZE - 1), outsider); // 1 LPT + lowest's stake
        assertTrue(bm.isInPool(outsider), "outsider joined once its stake beat the lowest");
        assertFalse(bm.isInPool(lowest), "lowest evicted");
        _assertPoolSorted(SET_SIZE);
    }

    function test_fullSet_memberLeavingFreesASeat() public {
        _unbond(members[77], _stakeOfRank(77)); // resigns
        _assertPoolSorted(SET_SIZE - 1);
        address newcomer = makeAddr("newcomer");
        _registerOrchestrator(newcomer, 2 ether, 0, 0); // below everyone, but there is a seat
        assertTrue(bm.isInPool(newcomer), "joined the free seat");
        assertEq(bm.getLastOrchestratorInPool(), newcomer, "at the end");
        _assertPoolSorted(SET_SIZE);
    }

    function test_fullSet_rewardsWithHostileHintsAcrossRounds() public {
        assertEq(bm.currentRoundTotalActiveStake(), bm.nextRoundTotalActiveStake(), "snapshot of 300 members");
        for (uint256 round = 0; round < 3; round++) {
            for (uint256 k = 0; k < 10; k++) {
                address m = members[_rand(11 + round, k) % SET_SIZE];
                if (bm.getOrchestrator(m).lastRewardRound == _round()) continue;
                vm.prank(m);
                bm.rewardWithHint(stranger, m);
            }
            _assertPoolSorted(SET_SIZE);
            _nextRound();
            assertEq(bm.currentRoundTotalActiveStake(), bm.nextRoundTotalActiveStake(), "snapshot == list total");
        }
    }

    function test_fullSet_topMemberDroppingToBottomWithHostileHint() public {
        address top = members[0];
        _unbondHinted(top, _stakeOfRank(0) - 1 ether - 1, top, top); // below every other member
        assertEq(bm.getLastOrchestratorInPool(), top, "moved to the end");
        _assertPoolSorted(SET_SIZE);
    }
}
