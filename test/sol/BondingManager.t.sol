// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Fixture} from "./utils/Fixture.sol";
import {IBondingManager} from "../../contracts/interfaces/IBondingManager.sol";

/// @notice Unit tests of every external BondingManager function: its effect, each revert, and its main events.
/// Round 1 is initialised by the fixture; orchestrators registered in a round are active from the next one.
contract BondingManagerTest is Fixture {
    address internal o1;
    address internal o2;
    address internal o3;
    address internal d1;
    address internal d2;
    address internal finder;

    uint256 internal constant SELF_STAKE = 1000 ether;

    function setUp() public override {
        super.setUp();
        o1 = makeAddr("orchestrator1");
        o2 = makeAddr("orchestrator2");
        o3 = makeAddr("orchestrator3");
        d1 = makeAddr("delegator1");
        d2 = makeAddr("delegator2");
        finder = makeAddr("finder");
    }

    function _err(bytes4 selector) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(selector);
    }

    // =========================================================================================================
    // Deployment and views
    // =========================================================================================================

    function test_constructor_wiresContractsAndSetsDefaults() public view {
        assertEq(bm.token(), address(token), "token");
        assertEq(bm.minter(), address(minter), "minter");
        assertEq(bm.roundsManager(), address(rounds), "roundsManager");
        assertEq(bm.ticketBroker(), broker, "ticketBroker");
        assertTrue(bm.isVerifier(verifier), "verifier enabled");
        assertEq(bm.unbondingPeriod(), UNBONDING_PERIOD, "unbondingPeriod");
        assertEq(bm.maxActiveOrchestrators(), 1000, "maxActiveOrchestrators default");
        assertEq(bm.maxFeeBackfillRounds(), 2, "maxFeeBackfillRounds default");
        assertEq(bm.MAX_FEE_BACKFILL_ROUNDS(), 6, "MAX_FEE_BACKFILL_ROUNDS");
        assertEq(bm.getOrchestratorPoolSize(), 0, "empty pool");
        assertEq(bm.getFirstOrchestratorInPool(), address(0), "empty pool head");
        assertEq(bm.getTotalBonded(), 0, "nothing bonded");
    }

    function test_cutsForRound_returnsZerosBeforeRegistration() public view {
        (uint256 rewardCut, uint256 feeShare) = bm.cutsForRound(o1, _round());
        assertEq(rewardCut, 0, "rewardCut");
        assertEq(feeShare, 0, "feeShare");
    }

    // =========================================================================================================
    // registerOrchestrator
    // =========================================================================================================

    function test_registerOrchestrator_registersAndIsActiveFromNextRound() public {
        uint256 r = _round();
        _registerOrchestrator(o1, SELF_STAKE, 100_000, 500_000);

        assertTrue(bm.isRegisteredOrchestrator(o1), "registered");
        assertTrue(bm.isInPool(o1), "in pool");
        assertFalse(bm.isActiveOrchestrator(o1), "not active in the registration round");
        assertEq(bm.getOrchestratorPoolSize(), 1, "pool size");
        assertEq(bm.getFirstOrchestratorInPool(), o1, "pool head");
        assertEq(bm.nextRoundTotalActiveStake(), SELF_STAKE, "next round active stake");
        IBondingManager.OrchestratorInfo memory info = bm.getOrchestrator(o1);
        assertTrue(info.registered, "info.registered");
        assertEq(info.activationRound, r + 1, "activationRound");
        assertEq(info.totalStake, SELF_STAKE, "totalStake");

        _nextRound();
        assertTrue(bm.isActiveOrchestrator(o1), "active in the next round");
        assertEq(bm.currentRoundTotalActiveStake(), SELF_STAKE, "current round active stake");
    }

    function test_registerOrchestrator_emitsOrchestratorUpdateAndActivated() public {
        uint256 r = _round();
        _bond(o1, SELF_STAKE, o1);
        vm.expectEmit(address(bm));
        emit IBondingManager.OrchestratorUpdate(o1, 100_000, 500_000, r);
        vm.expectEmit(address(bm));
        emit IBondingManager.OrchestratorActivated(o1, r + 1);
        vm.prank(o1);
        bm.registerOrchestrator(100_000, 500_000);
    }

    function test_registerOrchestrator_firstRegistrationCutsApplyInCurrentRound() public {
        _registerOrchestrator(o1, SELF_STAKE, 123_456, 654_321);
        (uint256 rewardCut, uint256 feeShare) = bm.cutsForRound(o1, _round());
        assertEq(rewardCut, 123_456, "rewardCut now");
        assertEq(feeShare, 654_321, "feeShare now");
        IBondingManager.OrchestratorInfo memory info = bm.getOrchestrator(o1);
        assertEq(info.rewardCut, 123_456, "info.rewardCut");
        assertEq(info.feeShare, 654_321, "info.feeShare");
    }

    function test_registerOrchestrator_laterCallSetsPendingCutsFromNextRound() public {
        _registerOrchestrator(o1, SELF_STAKE, 100_000, 500_000);
        _nextRound();
        uint256 r = _round();

        vm.expectEmit(address(bm));
        emit IBondingManager.OrchestratorUpdate(o1, 900_000, 10_000, r + 1);
        vm.prank(o1);
        bm.registerOrchestrator(900_000, 10_000);

        (uint256 rcNow, uint256 fsNow) = bm.cutsForRound(o1, r);
        assertEq(rcNow, 100_000, "rewardCut unchanged this round");
        assertEq(fsNow, 500_000, "feeShare unchanged this round");
        (uint256 rcNext, uint256 fsNext) = bm.cutsForRound(o1, r + 1);
        assertEq(rcNext, 900_000, "rewardCut next round");
        assertEq(fsNext, 10_000, "feeShare next round");
        IBondingManager.OrchestratorInfo memory info = bm.getOrchestrator(o1);
        assertEq(info.pendingRewardCut, 900_000, "pendingRewardCut");
        assertEq(info.pendingFeeShare, 10_000, "pendingFeeShare");
        assertEq(info.pendingCutsRound, r + 1, "pendingCutsRound");

        _nextRound();
        info = bm.getOrchestrator(o1);
        assertEq(info.rewardCut, 900_000, "rewardCut in force next round");
        assertEq(info.feeShare, 10_000, "feeShare in force next round");
        (rcNow,) = bm.cutsForRound(o1, r);
        assertEq(rcNow, 100_000, "past round keeps its cut");
    }

    function test_registerOrchestrator_revertsWhenNotBonded() public {
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.NotSelfBonded.selector, o1));
        vm.prank(o1);
        bm.registerOrchestrator(0, 0);
    }

    function test_registerOrchestrator_revertsWhenBondedToAnother() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _bond(d1, 10 ether, o1);
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.NotSelfBonded.selector, d1));
        vm.prank(d1);
        bm.registerOrchestrator(0, 0);
    }

    function test_registerOrchestrator_revertsWhenRewardCutAbovePPM() public {
        _bond(o1, SELF_STAKE, o1);
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.InvalidCut.selector, PPM + 1));
        vm.prank(o1);
        bm.registerOrchestrator(PPM + 1, 0);
    }

    function test_registerOrchestrator_revertsWhenFeeShareAbovePPM() public {
        _bond(o1, SELF_STAKE, o1);
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.InvalidCut.selector, PPM + 1));
        vm.prank(o1);
        bm.registerOrchestrator(0, PPM + 1);
    }

    function test_registerOrchestrator_acceptsCutsOfExactlyPPM() public {
        _registerOrchestrator(o1, SELF_STAKE, PPM, PPM);
        (uint256 rewardCut, uint256 feeShare) = bm.cutsForRound(o1, _round());
        assertEq(rewardCut, PPM, "rewardCut");
        assertEq(feeShare, PPM, "feeShare");
    }

    function test_registerOrchestrator_revertsInRoundLockWindow() public {
        _bond(o1, SELF_STAKE, o1);
        _rollToLockWindow();
        assertTrue(rounds.currentRoundLocked(), "in lock window");
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.CutsLocked.selector, _round()));
        vm.prank(o1);
        bm.registerOrchestrator(0, 0);
    }

    function test_registerOrchestrator_cutChangeRevertsInRoundLockWindow() public {
        _registerOrchestrator(o1, SELF_STAKE, 100_000, 500_000);
        _nextRound();
        _rollToLockWindow();
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.CutsLocked.selector, _round()));
        vm.prank(o1);
        bm.registerOrchestrator(PPM, 0);
    }

    function test_registerOrchestrator_belowMinimumStakeRegistersWithoutJoiningPool() public {
        bm.setMinimumStake(100 ether);
        _registerOrchestrator(o1, 99 ether, 0, 0);
        assertTrue(bm.isRegisteredOrchestrator(o1), "registered");
        assertFalse(bm.isInPool(o1), "not in pool");
        assertEq(bm.nextRoundTotalActiveStake(), 0, "no active stake");
        _nextRound();
        assertFalse(bm.isActiveOrchestrator(o1), "not active");
    }

    function test_registerOrchestrator_ordersPoolByStake() public {
        _registerOrchestrator(o1, 100 ether, 0, 0);
        _registerOrchestrator(o2, 300 ether, 0, 0);
        _registerOrchestrator(o3, 200 ether, 0, 0);
        address[] memory members = _pool();
        assertEq(members[0], o2, "first");
        assertEq(members[1], o3, "second");
        assertEq(members[2], o1, "third");
        _assertPoolSorted(3);
    }

    function test_registerOrchestratorWithHint_insertsWithCorrectHint() public {
        _registerOrchestrator(o1, 300 ether, 0, 0);
        _registerOrchestrator(o2, 100 ether, 0, 0);
        _bond(o3, 200 ether, o3);
        vm.prank(o3);
        bm.registerOrchestratorWithHint(0, 0, o1, o2);
        assertEq(bm.getNextOrchestratorInPool(o1), o3, "o3 after o1");
        assertEq(bm.getNextOrchestratorInPool(o3), o2, "o2 after o3");
        _assertPoolSorted(3);
    }

    // =========================================================================================================
    // bond
    // =========================================================================================================

    function test_bond_transfersTokensAndRecordsDelegation() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        uint256 r = _round();
        _fund(d1, 50 ether);
        uint256 bmBalance = token.balanceOf(address(bm));
        vm.prank(d1);
        bm.bond(50 ether, o1);

        assertEq(token.balanceOf(d1), 0, "delegator paid");
        assertEq(token.balanceOf(address(bm)), bmBalance + 50 ether, "BondingManager received");
        IBondingManager.DelegatorInfo memory info = bm.getDelegator(d1);
        assertEq(info.bondedAmount, 50 ether, "bondedAmount");
        assertEq(info.delegate, o1, "delegate");
        assertEq(info.startRound, r + 1, "stake earns from the next round");
        assertEq(bm.pendingStake(d1), 50 ether, "pendingStake");
        assertEq(bm.orchestratorTotalStake(o1), SELF_STAKE + 50 ether, "orchestrator total stake");
        assertEq(bm.nextRoundTotalActiveStake(), SELF_STAKE + 50 ether, "pool total");
        assertEq(bm.getTotalBonded(), SELF_STAKE + 50 ether, "total bonded");
    }

    function test_bond_emitsBond() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _fund(d1, 80 ether);
        vm.prank(d1);
        bm.bond(30 ether, o1);
        vm.expectEmit(address(bm));
        emit IBondingManager.Bond(o1, o1, d1, 50 ether, 80 ether);
        vm.prank(d1);
        bm.bond(50 ether, o1);
    }

    function test_bond_addingStakeAccumulates() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _bond(d1, 10 ether, o1);
        _nextRound();
        _bond(d1, 15 ether, o1);
        assertEq(bm.getDelegator(d1).bondedAmount, 25 ether, "bondedAmount");
        assertEq(bm.getDelegator(d1).startRound, _round() + 1, "startRound moves to next round");
        assertEq(bm.orchestratorTotalStake(o1), SELF_STAKE + 25 ether, "orchestrator total stake");
    }

    function test_bond_toSelfWithoutRegisteringIsAllowed() public {
        _bond(d1, 10 ether, d1);
        assertEq(bm.getDelegator(d1).delegate, d1, "self delegate");
        assertFalse(bm.isRegisteredOrchestrator(d1), "not registered");
        assertFalse(bm.isInPool(d1), "not in pool");
        assertEq(bm.getTotalBonded(), 10 ether, "total bonded");
    }

    function test_bond_revertsWhenTargetNotRegistered() public {
        _fund(d1, 10 ether);
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.NotRegisteredOrchestrator.selector, o1));
        vm.prank(d1);
        bm.bond(10 ether, o1);
    }

    function test_bond_revertsWhenTargetOnlySelfBonded() public {
        _bond(o1, SELF_STAKE, o1);
        _fund(d1, 10 ether);
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.NotRegisteredOrchestrator.selector, o1));
        vm.prank(d1);
        bm.bond(10 ether, o1);
    }

    function test_bond_revertsWhenAmountZeroAndNotMoving() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        vm.expectRevert(_err(IBondingManager.ZeroAmount.selector));
        vm.prank(d1);
        bm.bond(0, o1);

        _bond(d1, 10 ether, o1);
        vm.expectRevert(_err(IBondingManager.ZeroAmount.selector));
        vm.prank(d1);
        bm.bond(0, o1);
    }

    function test_bond_zeroAmountMovesWholeStake() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _registerOrchestrator(o2, SELF_STAKE, 0, 0);
        _bond(d1, 40 ether, o1);
        _nextRound();

        vm.expectEmit(address(bm));
        emit IBondingManager.Bond(o2, o1, d1, 0, 40 ether);
        vm.prank(d1);
        bm.bond(0, o2);

        IBondingManager.DelegatorInfo memory info = bm.getDelegator(d1);
        assertEq(info.delegate, o2, "new delegate");
        assertEq(info.bondedAmount, 40 ether, "whole stake moved");
        assertEq(info.startRound, _round() + 1, "moved stake earns from the next round");
        assertEq(bm.orchestratorTotalStake(o1), SELF_STAKE, "old delegate lost the stake");
        assertEq(bm.orchestratorTotalStake(o2), SELF_STAKE + 40 ether, "new delegate gained the stake");
        assertEq(bm.getTotalBonded(), 2 * SELF_STAKE + 40 ether, "total bonded unchanged");
    }

    function test_bond_movingWithAdditionalAmountMovesAll() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _registerOrchestrator(o2, SELF_STAKE, 0, 0);
        _bond(d1, 40 ether, o1);
        _bond(d1, 10 ether, o2);
        assertEq(bm.getDelegator(d1).bondedAmount, 50 ether, "bondedAmount");
        assertEq(bm.orchestratorTotalStake(o1), SELF_STAKE, "old delegate");
        assertEq(bm.orchestratorTotalStake(o2), SELF_STAKE + 50 ether, "new delegate");
        _assertPoolSorted(2);
    }

    function test_bond_revertsWhenOrchestratorMovesSelfStake() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _registerOrchestrator(o2, SELF_STAKE, 0, 0);
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.OrchestratorCannotMove.selector, o1));
        vm.prank(o1);
        bm.bond(0, o2);
    }

    function test_bond_revertsWhenRoundNotInitialized() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _fund(d1, 10 ether);
        vm.roll(rounds.nextRoundStartBlock());
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.CurrentRoundNotInitialized.selector, _round()));
        vm.prank(d1);
        bm.bond(10 ether, o1);
    }

    function test_bond_revertsWithoutAllowance() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        require(token.transfer(d1, 10 ether), "transfer");
        vm.expectRevert();
        vm.prank(d1);
        bm.bond(10 ether, o1);
    }

    function test_bond_revertsWhenBalanceTooLow() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _fund(d1, 10 ether);
        vm.expectRevert();
        vm.prank(d1);
        bm.bond(10 ether + 1, o1);
    }

    function test_bond_movesOrchestratorUpInPool() public {
        _registerOrchestrator(o1, 300 ether, 0, 0);
        _registerOrchestrator(o2, 200 ether, 0, 0);
        _registerOrchestrator(o3, 100 ether, 0, 0);
        _bond(d1, 250 ether, o3);
        assertEq(bm.getFirstOrchestratorInPool(), o3, "o3 moved to the head");
        _assertPoolSorted(3);
    }

    function test_bondWithHint_movesDelegationWithCorrectHints() public {
        _registerOrchestrator(o1, 300 ether, 0, 0);
        _registerOrchestrator(o2, 200 ether, 0, 0);
        _registerOrchestrator(o3, 100 ether, 0, 0);
        _bond(d1, 150 ether, o1); // o1 450, o2 200, o3 100
        // Moving d1 (150) from o1 to o3: o1 -> 300 stays first; o3 -> 250 goes between o1 and o2.
        vm.prank(d1);
        bm.bondWithHint(0, o3, address(0), o3, o1, o2);
        address[] memory members = _pool();
        assertEq(members[0], o1, "first");
        assertEq(members[1], o3, "second");
        assertEq(members[2], o2, "third");
        _assertPoolSorted(3);
    }

    // =========================================================================================================
    // unbond
    // =========================================================================================================

    function test_unbond_createsLockWithdrawableAfterUnbondingPeriod() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _bond(d1, 50 ether, o1);
        _nextRound();
        uint256 r = _round();
        uint256 lockId = _unbond(d1, 20 ether);

        (uint256 amount, uint256 withdrawRound) = bm.getUnbondingLock(d1, lockId);
        assertEq(amount, 20 ether, "lock amount");
        assertEq(withdrawRound, r + UNBONDING_PERIOD, "withdrawRound");
        IBondingManager.DelegatorInfo memory info = bm.getDelegator(d1);
        assertEq(info.bondedAmount, 30 ether, "bondedAmount");
        assertEq(info.delegate, o1, "delegate kept");
        assertEq(info.nextUnbondingLockId, lockId + 1, "next lock id");
        assertEq(bm.orchestratorTotalStake(o1), SELF_STAKE + 30 ether, "orchestrator stake");
        assertEq(bm.nextRoundTotalActiveStake(), SELF_STAKE + 30 ether, "pool total");
        assertEq(bm.getTotalBonded(), SELF_STAKE + 30 ether, "total bonded excludes locks");
    }

    function test_unbond_emitsUnbond() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _bond(d1, 50 ether, o1);
        uint256 lockId = bm.getDelegator(d1).nextUnbondingLockId;
        vm.expectEmit(address(bm));
        emit IBondingManager.Unbond(d1, o1, lockId, 20 ether, _round() + UNBONDING_PERIOD);
        vm.prank(d1);
        bm.unbond(20 ether);
    }

    function test_unbond_givesDistinctLockIds() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _bond(d1, 50 ether, o1);
        uint256 a = _unbond(d1, 10 ether);
        uint256 b = _unbond(d1, 15 ether);
        assertNotEq(a, b, "lock ids");
        (uint256 amountA,) = bm.getUnbondingLock(d1, a);
        (uint256 amountB,) = bm.getUnbondingLock(d1, b);
        assertEq(amountA, 10 ether, "lock a");
        assertEq(amountB, 15 ether, "lock b");
    }

    function test_unbond_revertsWhenAmountZero() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _bond(d1, 50 ether, o1);
        vm.expectRevert(_err(IBondingManager.ZeroAmount.selector));
        vm.prank(d1);
        bm.unbond(0);
    }

    function test_unbond_revertsWhenAmountExceedsBond() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _bond(d1, 50 ether, o1);
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.InsufficientBond.selector, 50 ether + 1, 50 ether));
        vm.prank(d1);
        bm.unbond(50 ether + 1);
    }

    function test_unbond_revertsWhenNeverBonded() public {
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.NotBonded.selector, d1));
        vm.prank(d1);
        bm.unbond(1);
    }

    function test_unbond_revertsWhenRoundNotInitialized() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _bond(d1, 50 ether, o1);
        vm.roll(rounds.nextRoundStartBlock());
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.CurrentRoundNotInitialized.selector, _round()));
        vm.prank(d1);
        bm.unbond(1 ether);
    }

    function test_unbond_fullAmountClearsDelegate() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _bond(d1, 50 ether, o1);
        _unbond(d1, 50 ether);
        IBondingManager.DelegatorInfo memory info = bm.getDelegator(d1);
        assertEq(info.bondedAmount, 0, "bondedAmount");
        assertEq(info.delegate, address(0), "delegate cleared");
        assertEq(bm.orchestratorTotalStake(o1), SELF_STAKE, "orchestrator stake");
    }

    function test_unbond_orchestratorFullUnbondResignsAndLeavesPoolNextRound() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _registerOrchestrator(o2, 2 * SELF_STAKE, 0, 0);
        _nextRound();
        uint256 r = _round();
        assertTrue(bm.isActiveOrchestrator(o1), "active");

        vm.expectEmit(address(bm));
        emit IBondingManager.OrchestratorResigned(o1, r);
        vm.prank(o1);
        bm.unbond(SELF_STAKE);

        assertFalse(bm.isRegisteredOrchestrator(o1), "no longer registered");
        assertFalse(bm.isInPool(o1), "left the pool");
        assertTrue(bm.isActiveOrchestrator(o1), "still active for the rest of the round");
        assertEq(bm.getOrchestrator(o1).deactivationRound, r + 1, "deactivationRound");
        assertEq(bm.nextRoundTotalActiveStake(), 2 * SELF_STAKE, "pool total");
        _assertPoolSorted(1);

        _nextRound();
        assertFalse(bm.isActiveOrchestrator(o1), "inactive next round");
        assertEq(bm.currentRoundTotalActiveStake(), 2 * SELF_STAKE, "active stake next round");
    }

    function test_unbond_delegatorsStayBondedToResignedOrchestratorAndCanLeave() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _bond(d1, 50 ether, o1);
        _nextRound();
        _unbond(o1, SELF_STAKE);
        _fund(d2, 1 ether);
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.NotRegisteredOrchestrator.selector, o1));
        vm.prank(d2);
        bm.bond(1 ether, o1);
        uint256 lockId = _unbond(d1, 50 ether);
        (uint256 amount,) = bm.getUnbondingLock(d1, lockId);
        assertEq(amount, 50 ether, "delegator unbonds in full");
    }

    function test_unbondWithHint_keepsPoolSorted() public {
        _registerOrchestrator(o1, 300 ether, 0, 0);
        _registerOrchestrator(o2, 200 ether, 0, 0);
        _registerOrchestrator(o3, 100 ether, 0, 0);
        // o1 300 -> 150 moves between o2 and o3.
        vm.prank(o1);
        bm.unbondWithHint(150 ether, o2, o3);
        address[] memory members = _pool();
        assertEq(members[0], o2, "first");
        assertEq(members[1], o1, "second");
        assertEq(members[2], o3, "third");
        _assertPoolSorted(3);
    }

    // =========================================================================================================
    // rebond / rebondFromUnbonded
    // =========================================================================================================

    function test_rebond_restoresStakeToCurrentDelegate() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _bond(d1, 50 ether, o1);
        uint256 lockId = _unbond(d1, 20 ether);
        _nextRound();

        vm.expectEmit(address(bm));
        emit IBondingManager.Rebond(d1, o1, lockId, 20 ether);
        vm.prank(d1);
        bm.rebond(lockId);

        assertEq(bm.getDelegator(d1).bondedAmount, 50 ether, "bondedAmount restored");
        assertEq(bm.orchestratorTotalStake(o1), SELF_STAKE + 50 ether, "orchestrator stake restored");
        (uint256 amount,) = bm.getUnbondingLock(d1, lockId);
        assertEq(amount, 0, "lock consumed");
    }

    function test_rebond_revertsForUnknownLock() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _bond(d1, 50 ether, o1);
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.InvalidUnbondingLock.selector, 7));
        vm.prank(d1);
        bm.rebond(7);
    }

    function test_rebond_revertsForUsedLock() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _bond(d1, 50 ether, o1);
        uint256 lockId = _unbond(d1, 20 ether);
        vm.prank(d1);
        bm.rebond(lockId);
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.InvalidUnbondingLock.selector, lockId));
        vm.prank(d1);
        bm.rebond(lockId);
    }

    function test_rebond_revertsWhenNotBonded() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _bond(d1, 50 ether, o1);
        uint256 lockId = _unbond(d1, 50 ether);
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.NotBonded.selector, d1));
        vm.prank(d1);
        bm.rebond(lockId);
    }

    function test_rebond_revertsWhenRoundNotInitialized() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _bond(d1, 50 ether, o1);
        uint256 lockId = _unbond(d1, 20 ether);
        vm.roll(rounds.nextRoundStartBlock());
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.CurrentRoundNotInitialized.selector, _round()));
        vm.prank(d1);
        bm.rebond(lockId);
    }

    function test_rebondWithHint_keepsPoolSorted() public {
        _registerOrchestrator(o1, 300 ether, 0, 0);
        _registerOrchestrator(o2, 200 ether, 0, 0);
        uint256 lockId = _unbond(o1, 150 ether); // o2 200, o1 150
        vm.prank(o1);
        bm.rebondWithHint(lockId, address(0), o2);
        assertEq(bm.getFirstOrchestratorInPool(), o1, "o1 back on top");
        _assertPoolSorted(2);
    }

    function test_rebondFromUnbonded_bondsLockToNewDelegate() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _registerOrchestrator(o2, SELF_STAKE, 0, 0);
        _bond(d1, 50 ether, o1);
        uint256 lockId = _unbond(d1, 50 ether);
        _nextRound();

        vm.expectEmit(address(bm));
        emit IBondingManager.Rebond(d1, o2, lockId, 50 ether);
        vm.prank(d1);
        bm.rebondFromUnbonded(o2, lockId);

        IBondingManager.DelegatorInfo memory info = bm.getDelegator(d1);
        assertEq(info.delegate, o2, "delegate");
        assertEq(info.bondedAmount, 50 ether, "bondedAmount");
        assertEq(info.startRound, _round() + 1, "earns from the next round");
        assertEq(bm.orchestratorTotalStake(o2), SELF_STAKE + 50 ether, "new delegate stake");
        assertEq(bm.orchestratorTotalStake(o1), SELF_STAKE, "old delegate stake");
    }

    function test_rebondFromUnbonded_revertsWhenStillBonded() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _registerOrchestrator(o2, SELF_STAKE, 0, 0);
        _bond(d1, 50 ether, o1);
        uint256 lockId = _unbond(d1, 20 ether);
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.AlreadyBonded.selector, d1, o1));
        vm.prank(d1);
        bm.rebondFromUnbonded(o2, lockId);
    }

    function test_rebondFromUnbonded_revertsWhenTargetNotRegistered() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _bond(d1, 50 ether, o1);
        uint256 lockId = _unbond(d1, 50 ether);
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.NotRegisteredOrchestrator.selector, o3));
        vm.prank(d1);
        bm.rebondFromUnbonded(o3, lockId);
    }

    function test_rebondFromUnbonded_revertsForUnknownLock() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.InvalidUnbondingLock.selector, 0));
        vm.prank(d1);
        bm.rebondFromUnbonded(o1, 0);
    }

    function test_rebondFromUnbondedWithHint_insertsAtHintedPosition() public {
        _registerOrchestrator(o1, 300 ether, 0, 0);
        _registerOrchestrator(o2, 100 ether, 0, 0);
        _bond(d1, 250 ether, o1);
        uint256 lockId = _unbond(d1, 250 ether);
        vm.prank(d1);
        bm.rebondFromUnbondedWithHint(o2, lockId, address(0), o1); // o2 350 > o1 300
        assertEq(bm.getFirstOrchestratorInPool(), o2, "o2 first");
        _assertPoolSorted(2);
    }

    // =========================================================================================================
    // withdrawStake
    // =========================================================================================================

    function test_withdrawStake_returnsTokensAtWithdrawRound() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _bond(d1, 50 ether, o1);
        uint256 lockId = _unbond(d1, 20 ether);
        (, uint256 withdrawRound) = bm.getUnbondingLock(d1, lockId);
        while (_round() < withdrawRound) _nextRound();

        vm.expectEmit(address(bm));
        emit IBondingManager.WithdrawStake(d1, lockId, 20 ether, withdrawRound);
        vm.prank(d1);
        bm.withdrawStake(lockId);

        assertEq(token.balanceOf(d1), 20 ether, "tokens returned");
        (uint256 amount,) = bm.getUnbondingLock(d1, lockId);
        assertEq(amount, 0, "lock consumed");
        assertEq(bm.getDelegator(d1).bondedAmount, 30 ether, "rest stays bonded");
    }

    function test_withdrawStake_revertsBeforeWithdrawRound() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _bond(d1, 50 ether, o1);
        uint256 lockId = _unbond(d1, 20 ether);
        (, uint256 withdrawRound) = bm.getUnbondingLock(d1, lockId);
        while (_round() < withdrawRound - 1) _nextRound();
        vm.expectRevert(
            abi.encodeWithSelector(IBondingManager.UnbondingLockNotWithdrawable.selector, lockId, withdrawRound)
        );
        vm.prank(d1);
        bm.withdrawStake(lockId);
    }

    function test_withdrawStake_revertsForUnknownLock() public {
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.InvalidUnbondingLock.selector, 3));
        vm.prank(d1);
        bm.withdrawStake(3);
    }

    function test_withdrawStake_revertsWhenWithdrawnTwice() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _bond(d1, 50 ether, o1);
        uint256 lockId = _unbond(d1, 20 ether);
        _advanceRounds(UNBONDING_PERIOD);
        vm.prank(d1);
        bm.withdrawStake(lockId);
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.InvalidUnbondingLock.selector, lockId));
        vm.prank(d1);
        bm.withdrawStake(lockId);
    }

    function test_withdrawStake_revertsForRebondedLock() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _bond(d1, 50 ether, o1);
        uint256 lockId = _unbond(d1, 20 ether);
        vm.prank(d1);
        bm.rebond(lockId);
        _advanceRounds(UNBONDING_PERIOD);
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.InvalidUnbondingLock.selector, lockId));
        vm.prank(d1);
        bm.withdrawStake(lockId);
    }

    // =========================================================================================================
    // reward
    // =========================================================================================================

    function test_reward_mintsShareOfMintableByStake() public {
        _registerOrchestrator(o1, 300 ether, 0, 0);
        _registerOrchestrator(o2, 100 ether, 0, 0);
        _nextRound();
        uint256 mintable = minter.currentMintableTokens();
        assertGt(mintable, 0, "mintable");
        uint256 supply = token.totalSupply();

        vm.expectEmit(address(bm));
        emit IBondingManager.Reward(o1, mintable * 300 / 400);
        _reward(o1);
        _reward(o2);

        assertEq(bm.orchestratorTotalStake(o1), 300 ether + mintable * 300 / 400, "o1 stake grew by its reward");
        assertEq(bm.orchestratorTotalStake(o2), 100 ether + mintable * 100 / 400, "o2 stake grew by its reward");
        assertApproxEqAbs(token.totalSupply(), supply + mintable, 1, "round mints its mintable");
        assertEq(bm.pendingStake(o1), 300 ether + mintable * 300 / 400, "o1 pendingStake");
        assertEq(bm.getOrchestrator(o1).lastRewardRound, _round(), "lastRewardRound");
    }

    function test_reward_splitsByRewardCut() public {
        uint256 s = 1000 ether;
        uint256 d = 3000 ether;
        _registerOrchestrator(o1, s, 100_000, 0);
        _bond(d1, d, o1);
        _nextRound();
        uint256 r = minter.currentMintableTokens() * (s + d) / bm.currentRoundTotalActiveStake();
        _reward(o1);

        uint256 cut = r * 100_000 / PPM;
        uint256 toDelegators = r - cut;
        assertApproxEqAbs(bm.pendingStake(d1), d + toDelegators * d / (s + d), 2, "delegator share");
        assertLe(bm.pendingStake(d1), d + toDelegators * d / (s + d), "delegator share rounds down");
        assertApproxEqAbs(bm.pendingStake(o1), s + cut + toDelegators * s / (s + d), 2, "orchestrator share");
        assertEq(bm.orchestratorTotalStake(o1), s + d + r, "total stake grew by the whole reward");
        assertLe(bm.pendingStake(o1) + bm.pendingStake(d1), s + d + r, "claims never exceed the stake");
    }

    function test_reward_fullRewardCutGivesDelegatorsNothing() public {
        _registerOrchestrator(o1, SELF_STAKE, PPM, 0);
        _bond(d1, 500 ether, o1);
        _nextRound();
        _reward(o1);
        assertEq(bm.pendingStake(d1), 500 ether, "delegator unchanged");
    }

    function test_reward_stakeBondedThisRoundDoesNotEarnYet() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _nextRound();
        _bond(d1, 500 ether, o1);
        _reward(o1);
        assertEq(bm.pendingStake(d1), 500 ether, "bonded this round: no reward");
        assertEq(bm.pendingStake(o1), bm.orchestratorTotalStake(o1) - 500 ether, "whole reward to the self-stake");
        _nextRound();
        _reward(o1);
        assertGt(bm.pendingStake(d1), 500 ether, "earns from the next round");
    }

    function test_reward_emitsReward() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _nextRound();
        vm.expectEmit(address(bm));
        emit IBondingManager.Reward(o1, minter.currentMintableTokens());
        _reward(o1);
    }

    function test_reward_revertsWhenNotYetActive() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.NotActiveOrchestrator.selector, o1));
        _reward(o1);
    }

    function test_reward_revertsWhenNotRegistered() public {
        _bond(d1, 10 ether, d1);
        _nextRound();
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.NotActiveOrchestrator.selector, d1));
        _reward(d1);
    }

    function test_reward_revertsWhenCalledTwiceInRound() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _nextRound();
        _reward(o1);
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.RewardAlreadyCalled.selector, _round()));
        _reward(o1);
    }

    function test_reward_revertsWhenRoundNotInitialized() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _nextRound();
        vm.roll(rounds.nextRoundStartBlock());
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.CurrentRoundNotInitialized.selector, _round()));
        _reward(o1);
    }

    function test_reward_afterSkippedRoundsStillWorks() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _bond(d1, SELF_STAKE, o1);
        _advanceRounds(4);
        _reward(o1);
        assertGt(bm.pendingStake(d1), SELF_STAKE, "delegator earned");
        assertApproxEqAbs(
            bm.pendingStake(o1) + bm.pendingStake(d1), bm.orchestratorTotalStake(o1), 2, "pending sums to total"
        );
    }

    function test_rewardWithHint_movesToHintedPosition() public {
        _registerOrchestrator(o1, 1000 ether, 0, 0);
        _registerOrchestrator(o2, 1000 ether - 1, 0, 0);
        _nextRound();
        // o2's reward lifts it above o1.
        vm.prank(o2);
        bm.rewardWithHint(address(0), o1);
        assertEq(bm.getFirstOrchestratorInPool(), o2, "o2 first");
        _assertPoolSorted(2);
    }

    // =========================================================================================================
    // updateOrchestratorWithFees / withdrawFees / claimEarnings
    // =========================================================================================================

    function test_updateOrchestratorWithFees_splitsByFeeShare() public {
        _registerOrchestrator(o1, 1000 ether, 0, 500_000);
        _bond(d1, 3000 ether, o1);
        _nextRound();
        _creditFees(o1, 1 ether, _round());
        assertEq(bm.pendingFees(d1), 0.375 ether, "delegator: half of the fees by 3/4 of the stake");
        assertEq(bm.pendingFees(o1), 0.625 ether, "orchestrator: its half plus 1/4 of the delegators' half");
    }

    function test_updateOrchestratorWithFees_emitsFeesCredited() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 500_000);
        _nextRound();
        vm.deal(broker, 1 ether);
        vm.prank(broker);
        minter.depositETH{value: 1 ether}();
        uint256 r = _round();
        vm.expectEmit(address(bm));
        emit IBondingManager.FeesCredited(o1, 1 ether, r);
        vm.prank(broker);
        bm.updateOrchestratorWithFees(o1, 1 ether, r);
    }

    function test_updateOrchestratorWithFees_revertsWhenCallerNotTicketBroker() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 500_000);
        uint256 r = _round();
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.OnlyTicketBroker.selector, d1));
        vm.prank(d1);
        bm.updateOrchestratorWithFees(o1, 1 ether, r);
    }

    function test_updateOrchestratorWithFees_revertsWhenRoundInFuture() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 500_000);
        uint256 r = _round();
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.FeeRoundInFuture.selector, r + 1, r));
        vm.prank(broker);
        bm.updateOrchestratorWithFees(o1, 1 ether, r + 1);
    }

    function test_updateOrchestratorWithFees_revertsWhenRoundTooOld() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 500_000);
        _advanceRounds(4);
        uint256 r = _round();
        uint256 oldest = r - bm.maxFeeBackfillRounds();
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.FeeRoundTooOld.selector, oldest - 1, r));
        vm.prank(broker);
        bm.updateOrchestratorWithFees(o1, 1 ether, oldest - 1);
        // The oldest allowed round is accepted.
        _creditFees(o1, 1 ether, oldest);
    }

    /// @notice The credit answers the TicketBroker's redemption with the current round and the orchestrator's
    /// activity in it (it saves the broker separate calls).
    function test_updateOrchestratorWithFees_returnsCurrentRoundAndActivity() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 500_000);
        _nextRound();
        _registerOrchestrator(o2, SELF_STAKE, 0, 500_000); // active from the next round only
        uint256 r = _round();
        vm.deal(broker, 2 ether);
        vm.startPrank(broker);
        minter.depositETH{value: 2 ether}();
        (uint256 round, bool active) = bm.updateOrchestratorWithFees(o1, 1 ether, r);
        assertEq(round, r, "round");
        assertTrue(active, "o1 active");
        (round, active) = bm.updateOrchestratorWithFees(o2, 1 ether, r);
        assertEq(round, r, "round");
        assertFalse(active, "o2 not active yet");
        vm.stopPrank();
    }

    /// @notice Fees are below 2^128 (the broker pays them from 128-bit balances); the credit's arithmetic relies on it.
    function test_updateOrchestratorWithFees_revertsWhenFeesExceed128Bits() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 500_000);
        _nextRound();
        uint256 r = _round();
        vm.expectRevert(
            abi.encodeWithSelector(bytes4(keccak256("SafeCastOverflowedUintDowncast(uint8,uint256)")), 128, 2 ** 128)
        );
        vm.prank(broker);
        bm.updateOrchestratorWithFees(o1, 2 ** 128, r);
    }

    /// @notice Fees credited after the orchestrator's reward in the same round are shared by the stake at the round's
    /// start (the reward factor before the reward, kept in the orchestrator's record), exactly as before the reward.
    function test_updateOrchestratorWithFees_afterRewardInSameRoundSplitsByStakeAtRoundStart() public {
        _registerOrchestrator(o1, 1000 ether, 0, PPM);
        _bond(d1, 3000 ether, o1);
        _nextRound();
        _creditFees(o1, 1 ether, _round()); // before the reward
        _reward(o1);
        _creditFees(o1, 1 ether, _round()); // after it
        _creditFees(o1, 1 ether, _round()); // and again
        assertApproxEqAbs(bm.pendingFees(d1), 2.25 ether, 10, "delegator: 3/4 of every credit");
        assertApproxEqAbs(bm.pendingFees(o1), 0.75 ether, 10, "orchestrator: 1/4 of every credit");
        // The next round's credits (no reward yet) follow the grown stake.
        _nextRound();
        uint256 d1Stake = bm.pendingStake(d1);
        uint256 o1Stake = bm.pendingStake(o1);
        uint256 before = bm.pendingFees(d1);
        _creditFees(o1, 1 ether, _round());
        assertApproxEqAbs(bm.pendingFees(d1) - before, 1 ether * d1Stake / (d1Stake + o1Stake), 10, "next round");
    }

    function test_updateOrchestratorWithFees_backfilledFeesReachDelegatorsOfTicketRound() public {
        _registerOrchestrator(o1, 1000 ether, 0, PPM);
        _bond(d1, 1000 ether, o1);
        _nextRound();
        uint256 ticketRound = _round();
        _nextRound();
        // d2 joins after the ticket's round; it must not share in that round's fees.
        _bond(d2, 2000 ether, o1);
        _nextRound();
        _creditFees(o1, 1 ether, ticketRound);
        assertEq(bm.pendingFees(d1), 0.5 ether, "d1 was bonded in the ticket round");
        assertEq(bm.pendingFees(o1), 0.5 ether, "o1 was bonded in the ticket round");
        assertEq(bm.pendingFees(d2), 0, "d2 joined later");
    }

    /// @dev Spec: fees go to the pool of the ticket's round "so delegators who were bonded in `round` get it even
    /// when the ticket is cashed later" — also when the delegator claimed in between (claims happen on every
    /// bond, unbond and withdrawFees, so a delegator cannot avoid them).
    function test_updateOrchestratorWithFees_backfillReachesDelegatorWhoClaimedSinceTicketRound() public {
        _registerOrchestrator(o1, 1000 ether, 0, PPM);
        _bond(d1, 1000 ether, o1);
        _nextRound();
        uint256 ticketRound = _round();
        _nextRound();
        vm.prank(d1);
        bm.claimEarnings(); // settles through the ticket's round
        _creditFees(o1, 1 ether, ticketRound);
        assertEq(bm.pendingFees(d1), 0.5 ether, "delegator bonded in the ticket's round gets its share");
        assertEq(bm.pendingFees(o1), 0.5 ether, "orchestrator gets its share");
    }

    /// @dev THREATS 9: "the orchestrator cashes after its delegators leave" — the fees still go to the pool of the
    /// ticket's round, so the delegators who were bonded then (and left since) get their share.
    function test_updateOrchestratorWithFees_backfillReachesDelegatorWhoUnbondedSinceTicketRound() public {
        _registerOrchestrator(o1, 1000 ether, 0, PPM);
        _bond(d1, 1000 ether, o1);
        _nextRound();
        uint256 ticketRound = _round();
        _nextRound();
        _unbond(d1, 1000 ether);
        _creditFees(o1, 1 ether, ticketRound);
        assertEq(bm.pendingFees(d1), 0.5 ether, "delegator bonded in the ticket's round gets its share");
        _nextRound();
        vm.prank(d1);
        bm.withdrawFees(payable(d1), 0.5 ether);
        assertEq(d1.balance, 0.5 ether, "and can withdraw it");
    }

    function test_updateOrchestratorWithFees_backfillReachesDelegatorWhoMovedSinceTicketRound() public {
        _registerOrchestrator(o1, 1000 ether, 0, PPM);
        _registerOrchestrator(o2, 1000 ether, 0, PPM);
        _bond(d1, 1000 ether, o1);
        _nextRound();
        uint256 ticketRound = _round();
        _nextRound();
        vm.prank(d1);
        bm.bond(0, o2);
        _creditFees(o1, 1 ether, ticketRound);
        assertEq(bm.pendingFees(d1), 0.5 ether, "delegator bonded to o1 in the ticket's round gets its share");
    }

    function test_updateOrchestratorWithFees_backfillReachesPartOfStakeUnbondedSinceTicketRound() public {
        _registerOrchestrator(o1, 1000 ether, 0, PPM);
        _bond(d1, 1000 ether, o1);
        _nextRound();
        uint256 ticketRound = _round();
        _nextRound();
        _unbond(d1, 400 ether);
        _creditFees(o1, 1 ether, ticketRound);
        assertEq(bm.pendingFees(d1), 0.5 ether, "the whole stake of the ticket's round shares the fees");
    }

    function test_updateOrchestratorWithFees_backfillReachesStakeUnbondedInTwoSteps() public {
        _registerOrchestrator(o1, 1000 ether, 0, PPM);
        _bond(d1, 1000 ether, o1);
        _nextRound();
        _unbond(d1, 100 ether); // before the ticket's round
        _nextRound();
        uint256 ticketRound = _round(); // o1 1000, d1 900 earning
        _nextRound();
        _unbond(d1, 100 ether); // after it
        _creditFees(o1, 1 ether, ticketRound);
        assertApproxEqAbs(bm.pendingFees(d1), uint256(1 ether) * 900 / 1900, 2, "d1's 900 LPT of the ticket's round");
        assertApproxEqAbs(bm.pendingFees(o1), uint256(1 ether) * 1000 / 1900, 2, "o1's 1000 LPT of the ticket's round");
    }

    function test_updateOrchestratorWithFees_backfillReachesStakeOfDelegatorWhoToppedUpSinceTicketRound() public {
        _registerOrchestrator(o1, 1000 ether, 0, PPM);
        _bond(d1, 1000 ether, o1);
        _nextRound();
        uint256 ticketRound = _round();
        _bond(d1, 500 ether, o1); // added during the ticket's round: earns from the next round
        _nextRound();
        _bond(d1, 1 ether, o1); // any later stake change settles the earlier additions
        _creditFees(o1, 1 ether, ticketRound);
        assertEq(bm.pendingFees(d1), 0.5 ether, "the 1000 LPT bonded in the ticket's round get their share");
    }

    function test_updateOrchestratorWithFees_backfillReachesStakeAddedOverSeveralRounds() public {
        _registerOrchestrator(o1, 1000 ether, 0, PPM);
        _bond(d1, 1000 ether, o1);
        _nextRound();
        _bond(d1, 500 ether, o1);
        _nextRound();
        uint256 ticketRound = _round(); // d1 has 1500 LPT earning here, o1 1000
        _bond(d1, 250 ether, o1);
        _nextRound();
        _bond(d1, 1 ether, o1);
        _creditFees(o1, 1 ether, ticketRound);
        assertEq(bm.pendingFees(d1), 0.6 ether, "all of d1's stake of the ticket's round gets its share");
        assertEq(bm.pendingFees(o1), 0.4 ether, "o1's share");
    }

    /// @dev Orchestrators call reward at the start of a round, while winning tickets of the previous round are
    /// still being redeemed; reward claims the orchestrator's own earnings, which must not forfeit those fees.
    function test_updateOrchestratorWithFees_backfillAfterRewardReachesOrchestratorsOwnStake() public {
        _registerOrchestrator(o1, 1000 ether, 0, 500_000);
        _nextRound();
        uint256 ticketRound = _round();
        _nextRound();
        _reward(o1);
        _creditFees(o1, 1 ether, ticketRound);
        assertEq(bm.pendingFees(o1), 1 ether, "the only staker gets its fee cut and the delegators' share");
    }

    function test_updateOrchestratorWithFees_feesAfterDelegatorClaimInSameRoundReachIt() public {
        _registerOrchestrator(o1, 1000 ether, 0, PPM);
        _bond(d1, 1000 ether, o1);
        _nextRound();
        _reward(o1); // orchestrators call reward early in the round
        uint256 stake = bm.pendingStake(d1);
        _bond(d1, 1 ether, o1); // the delegator tops up (and thereby claims) after the reward
        _creditFees(o1, 1 ether, _round()); // a ticket of this round is cashed later in the round
        uint256 total = bm.orchestratorTotalStake(o1) - 1 ether; // stake at the round's start plus the reward
        assertApproxEqAbs(bm.pendingFees(d1), 1 ether * stake / total, 2, "delegator gets its share of the fees");
    }

    function test_updateOrchestratorWithFees_usesFeeShareOfTicketRound() public {
        _registerOrchestrator(o1, 1000 ether, 0, PPM);
        _bond(d1, 1000 ether, o1);
        _nextRound();
        uint256 ticketRound = _round();
        vm.prank(o1);
        bm.registerOrchestrator(0, 0); // from the next round delegators get nothing
        _nextRound();
        _creditFees(o1, 1 ether, ticketRound);
        assertEq(bm.pendingFees(d1), 0.5 ether, "ticket round's fee share applies");
    }

    function test_withdrawFees_paysRecipientFromMinter() public {
        _registerOrchestrator(o1, 1000 ether, 0, 500_000);
        _bond(d1, 3000 ether, o1);
        _nextRound();
        _creditFees(o1, 1 ether, _round());
        _nextRound();
        address payable recipient = payable(makeAddr("recipient"));
        uint256 minterBalance = address(minter).balance;

        vm.expectEmit(address(bm));
        emit IBondingManager.WithdrawFees(d1, recipient, 0.3 ether);
        vm.prank(d1);
        bm.withdrawFees(recipient, 0.3 ether);

        assertEq(recipient.balance, 0.3 ether, "recipient paid");
        assertEq(address(minter).balance, minterBalance - 0.3 ether, "paid from the Minter");
        assertEq(bm.pendingFees(d1), 0.075 ether, "rest stays");
        assertEq(bm.getDelegator(d1).fees, 0.075 ether, "claimed fees left");
    }

    function test_withdrawFees_revertsWhenAmountExceedsFees() public {
        _registerOrchestrator(o1, 1000 ether, 0, 500_000);
        _bond(d1, 3000 ether, o1);
        _nextRound();
        _creditFees(o1, 1 ether, _round());
        _nextRound();
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.InsufficientFees.selector, 0.375 ether + 1, 0.375 ether));
        vm.prank(d1);
        bm.withdrawFees(payable(d1), 0.375 ether + 1);
    }

    function test_withdrawFees_revertsWithoutFees() public {
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.InsufficientFees.selector, 1, 0));
        vm.prank(d1);
        bm.withdrawFees(payable(d1), 1);
    }

    function test_withdrawFees_revertsForZeroRecipient() public {
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.ZeroAddress.selector));
        vm.prank(d1);
        bm.withdrawFees(payable(address(0)), 0);
    }

    function test_withdrawFees_orchestratorWithdrawsItsCut() public {
        _registerOrchestrator(o1, 1000 ether, 0, 500_000);
        _bond(d1, 3000 ether, o1);
        _nextRound();
        _creditFees(o1, 1 ether, _round());
        _nextRound();
        vm.prank(o1);
        bm.withdrawFees(payable(o1), 0.625 ether);
        assertEq(o1.balance, 0.625 ether, "orchestrator paid");
        assertEq(bm.pendingFees(o1), 0, "nothing left");
    }

    function test_claimEarnings_movesPendingIntoBondedAndFees() public {
        _registerOrchestrator(o1, 1000 ether, 100_000, 500_000);
        _bond(d1, 3000 ether, o1);
        _nextRound();
        _reward(o1);
        _creditFees(o1, 1 ether, _round());
        _nextRound();
        uint256 stake = bm.pendingStake(d1);
        uint256 fees = bm.pendingFees(d1);
        assertGt(stake, 3000 ether, "earned rewards");
        assertEq(fees, 0.375 ether, "earned fees");

        vm.prank(d1);
        bm.claimEarnings();

        IBondingManager.DelegatorInfo memory info = bm.getDelegator(d1);
        assertEq(info.bondedAmount, stake, "bondedAmount = pendingStake");
        assertEq(info.fees, fees, "fees = pendingFees");
        assertEq(info.lastClaimRound, _round() - 1, "settled through the previous round");
        assertEq(bm.pendingStake(d1), stake, "pendingStake unchanged by claiming");
        assertEq(bm.pendingFees(d1), fees, "pendingFees unchanged by claiming");
    }

    function test_claimEarnings_emitsEarningsClaimed() public {
        _registerOrchestrator(o1, 1000 ether, 0, 0);
        _bond(d1, 1000 ether, o1);
        _nextRound();
        _reward(o1);
        _nextRound();
        uint256 rewards = bm.pendingStake(d1) - 1000 ether;
        vm.expectEmit(true, true, false, false, address(bm));
        emit IBondingManager.EarningsClaimed(o1, d1, rewards, 0, 0, 0);
        vm.prank(d1);
        bm.claimEarnings();
    }

    function test_claimEarnings_secondClaimInRoundChangesNothing() public {
        _registerOrchestrator(o1, 1000 ether, 0, 0);
        _bond(d1, 1000 ether, o1);
        _nextRound();
        _reward(o1);
        _nextRound();
        vm.prank(d1);
        bm.claimEarnings();
        IBondingManager.DelegatorInfo memory first = bm.getDelegator(d1);
        vm.prank(d1);
        bm.claimEarnings();
        IBondingManager.DelegatorInfo memory second = bm.getDelegator(d1);
        assertEq(second.bondedAmount, first.bondedAmount, "bondedAmount");
        assertEq(second.fees, first.fees, "fees");
        assertEq(second.lastClaimRound, first.lastClaimRound, "lastClaimRound");
    }

    function test_claimEarnings_onceAfterManyRoundsEqualsClaimingEveryRound() public {
        _registerOrchestrator(o1, 1000 ether, 250_000, 400_000);
        _bond(d1, 777 ether, o1);
        _bond(d2, 777 ether, o1);
        for (uint256 i = 0; i < 12; i++) {
            _nextRound();
            _reward(o1);
            _creditFees(o1, 0.1 ether + i, _round());
            vm.prank(d1);
            bm.claimEarnings();
        }
        _nextRound();
        vm.prank(d1);
        bm.claimEarnings();
        vm.prank(d2);
        bm.claimEarnings();
        // Each of d1's 13 claims may round its two stake parts down by a wei each; claiming often never gains.
        assertLe(bm.getDelegator(d1).bondedAmount, bm.getDelegator(d2).bondedAmount, "frequent claims gain stake");
        assertLe(bm.getDelegator(d1).fees, bm.getDelegator(d2).fees, "frequent claims gain fees");
        assertApproxEqAbs(bm.getDelegator(d1).bondedAmount, bm.getDelegator(d2).bondedAmount, 26, "stake");
        assertApproxEqAbs(bm.getDelegator(d1).fees, bm.getDelegator(d2).fees, 26, "fees");
    }

    function test_claimEarnings_revertsWhenRoundNotInitialized() public {
        _registerOrchestrator(o1, 1000 ether, 0, 0);
        _bond(d1, 1000 ether, o1);
        vm.roll(rounds.nextRoundStartBlock());
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.CurrentRoundNotInitialized.selector, _round()));
        vm.prank(d1);
        bm.claimEarnings();
    }

    // =========================================================================================================
    // slash
    // =========================================================================================================

    function test_slash_burnsPenaltyAndPaysFinder() public {
        bm.setFinderFee(50_000);
        _registerOrchestrator(o1, 1000 ether, 0, 0);
        _bond(d1, 500 ether, o1);
        _nextRound();
        uint256 supply = token.totalSupply();

        vm.expectEmit(address(bm));
        emit IBondingManager.Slash(o1, finder, 100 ether, 5 ether);
        _slash(o1, 100_000, finder);

        assertEq(bm.pendingStake(o1), 900 ether, "self-bond cut by 10 %");
        assertEq(bm.orchestratorTotalStake(o1), 1400 ether, "total stake cut by the penalty");
        assertEq(token.balanceOf(finder), 5 ether, "finder's fee");
        assertEq(token.totalSupply(), supply - 95 ether, "rest burned");
        assertEq(bm.getTotalBonded(), 1400 ether, "total bonded");
    }

    function test_slash_doesNotTouchDelegatorsStake() public {
        _registerOrchestrator(o1, 1000 ether, 0, 0);
        _bond(d1, 500 ether, o1);
        _nextRound();
        _slash(o1, 500_000, address(0));
        assertEq(bm.pendingStake(d1), 500 ether, "delegator stake");
        uint256 lockId = _unbond(d1, 500 ether);
        (uint256 amount,) = bm.getUnbondingLock(d1, lockId);
        assertEq(amount, 500 ether, "delegator unbonds in full");
    }

    function test_slash_removesFromActiveSetAtOnce() public {
        _registerOrchestrator(o1, 1000 ether, 0, 0);
        _registerOrchestrator(o2, 500 ether, 0, 0);
        _nextRound();
        assertTrue(bm.isActiveOrchestrator(o1), "active before");
        _slash(o1, 100_000, address(0));
        assertFalse(bm.isActiveOrchestrator(o1), "inactive at once");
        assertFalse(bm.isInPool(o1), "left the pool");
        assertEq(bm.nextRoundTotalActiveStake(), 500 ether, "pool total");
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.NotActiveOrchestrator.selector, o1));
        _reward(o1);
        _assertPoolSorted(1);
    }

    function test_slash_reachesUnbondingLocks() public {
        _registerOrchestrator(o1, 1000 ether, 0, 0);
        _nextRound();
        uint256 lockId = _unbond(o1, 400 ether);
        _slash(o1, 500_000, address(0));
        assertEq(bm.pendingStake(o1), 300 ether, "self-bond halved");
        (uint256 amount,) = bm.getUnbondingLock(o1, lockId);
        assertEq(amount, 200 ether, "lock halved");
    }

    function test_slash_revertsWhenCallerNotVerifier() public {
        _registerOrchestrator(o1, 1000 ether, 0, 0);
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.NotVerifier.selector, d1));
        vm.prank(d1);
        bm.slash(o1, 100_000, d1);
    }

    function test_slash_revertsWhenFractionAbovePPM() public {
        _registerOrchestrator(o1, 1000 ether, 0, 0);
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.InvalidFraction.selector, PPM + 1));
        _slash(o1, PPM + 1, address(0));
    }

    function test_slash_disabledVerifierCannotSlash() public {
        _registerOrchestrator(o1, 1000 ether, 0, 0);
        bm.setVerifier(verifier, false);
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.NotVerifier.selector, verifier));
        _slash(o1, 100_000, address(0));
    }

    // =========================================================================================================
    // setCurrentRoundTotalActiveStake
    // =========================================================================================================

    function test_setCurrentRoundTotalActiveStake_revertsWhenCallerNotRoundsManager() public {
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.OnlyRoundsManager.selector, d1));
        vm.prank(d1);
        bm.setCurrentRoundTotalActiveStake();
    }

    function test_setCurrentRoundTotalActiveStake_snapshotsPoolTotalAtRoundStart() public {
        _registerOrchestrator(o1, 1000 ether, 0, 0);
        assertEq(bm.currentRoundTotalActiveStake(), 0, "nothing active this round");
        vm.roll(rounds.nextRoundStartBlock());
        vm.expectEmit(address(bm));
        emit IBondingManager.CurrentRoundTotalActiveStakeSet(_round(), 1000 ether);
        rounds.initializeRound();
        assertEq(bm.currentRoundTotalActiveStake(), 1000 ether, "snapshot");
        _bond(d1, 50 ether, o1);
        assertEq(bm.currentRoundTotalActiveStake(), 1000 ether, "snapshot fixed for the round");
        assertEq(bm.nextRoundTotalActiveStake(), 1050 ether, "next round's total moves");
    }

    // =========================================================================================================
    // Minimum stake, earnings pools, uninitialised rounds
    // =========================================================================================================

    function test_unbond_belowMinimumStakeLeavesPoolNextRound() public {
        bm.setMinimumStake(500 ether);
        _registerOrchestrator(o1, 1000 ether, 0, 0);
        _nextRound();
        uint256 r = _round();
        vm.expectEmit(address(bm));
        emit IBondingManager.OrchestratorDeactivated(o1, r + 1);
        _unbond(o1, 600 ether);
        assertTrue(bm.isRegisteredOrchestrator(o1), "still registered");
        assertFalse(bm.isInPool(o1), "left the pool");
        assertTrue(bm.isActiveOrchestrator(o1), "active until the round ends");
        _nextRound();
        assertFalse(bm.isActiveOrchestrator(o1), "inactive next round");
    }

    function test_bond_raisingRegisteredOutsiderAboveMinimumStakeJoinsPool() public {
        bm.setMinimumStake(500 ether);
        _registerOrchestrator(o1, 400 ether, 0, 0);
        assertFalse(bm.isInPool(o1), "below the minimum");
        _fund(d1, 100 ether);
        uint256 r = _round();
        vm.expectEmit(address(bm));
        emit IBondingManager.OrchestratorActivated(o1, r + 1);
        vm.prank(d1);
        bm.bond(100 ether, o1);
        assertTrue(bm.isInPool(o1), "joined at the minimum");
        _assertPoolSorted(1);
    }

    function test_getEarningsPool_recordsStakeAtRoundStartAndFactors() public {
        _registerOrchestrator(o1, 1000 ether, 0, PPM);
        _nextRound();
        uint256 r = _round();
        (uint256 stake0, uint256 crf0,) = bm.getEarningsPool(o1, r);
        assertEq(stake0, 0, "no pool before anything touches the orchestrator in the round");
        assertEq(crf0, 0, "no factor before anything touches the orchestrator in the round");

        _bond(d1, 500 ether, o1); // touches the pool first: stake at the round's start excludes this bond
        _reward(o1);
        _creditFees(o1, 1 ether, r);
        (uint256 stake, uint256 crf, uint256 cff) = bm.getEarningsPool(o1, r);
        assertEq(stake, 1000 ether, "stake at the round's start");
        assertGt(crf, PRECISE, "reward raised the reward factor");
        assertGt(cff, 0, "fees raised the fee factor");
    }

    function test_registerOrchestrator_revertsWhenRoundNotInitialized() public {
        _bond(o1, SELF_STAKE, o1);
        vm.roll(rounds.nextRoundStartBlock());
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.CurrentRoundNotInitialized.selector, _round()));
        vm.prank(o1);
        bm.registerOrchestrator(0, 0);
    }

    function test_withdrawStake_revertsWhenRoundNotInitialized() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, 0);
        _bond(d1, 50 ether, o1);
        uint256 lockId = _unbond(d1, 20 ether);
        _advanceRounds(UNBONDING_PERIOD);
        vm.roll(rounds.nextRoundStartBlock());
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.CurrentRoundNotInitialized.selector, _round()));
        vm.prank(d1);
        bm.withdrawStake(lockId);
    }

    function test_withdrawFees_revertsWhenRoundNotInitialized() public {
        _registerOrchestrator(o1, SELF_STAKE, 0, PPM);
        _bond(d1, 50 ether, o1);
        _nextRound();
        _creditFees(o1, 1 ether, _round());
        _nextRound();
        vm.roll(rounds.nextRoundStartBlock());
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.CurrentRoundNotInitialized.selector, _round()));
        vm.prank(d1);
        bm.withdrawFees(payable(d1), 1);
    }

    // =========================================================================================================
    // Owner parameters
    // =========================================================================================================

    function test_setUnbondingPeriod_setsAndEmits() public {
        vm.expectEmit(address(bm));
        emit IBondingManager.UnbondingPeriodSet(3);
        bm.setUnbondingPeriod(3);
        assertEq(bm.unbondingPeriod(), 3, "unbondingPeriod");
    }

    function test_setUnbondingPeriod_revertsWhenZero() public {
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.InvalidUnbondingPeriod.selector, 0));
        bm.setUnbondingPeriod(0);
    }

    function test_setMinimumStake_setsAndEmits() public {
        vm.expectEmit(address(bm));
        emit IBondingManager.MinimumStakeSet(5 ether);
        bm.setMinimumStake(5 ether);
        assertEq(bm.minimumStake(), 5 ether, "minimumStake");
    }

    function test_setMaxActiveOrchestrators_setsAndEmits() public {
        vm.expectEmit(address(bm));
        emit IBondingManager.MaxActiveOrchestratorsSet(300);
        bm.setMaxActiveOrchestrators(300);
        assertEq(bm.maxActiveOrchestrators(), 300, "maxActiveOrchestrators");
    }

    function test_setMaxActiveOrchestrators_revertsWhenZero() public {
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.InvalidMaxActiveOrchestrators.selector, 0, 0));
        bm.setMaxActiveOrchestrators(0);
    }

    function test_setMaxActiveOrchestrators_revertsWhenBelowPoolSize() public {
        _registerOrchestrator(o1, 100 ether, 0, 0);
        _registerOrchestrator(o2, 100 ether, 0, 0);
        _registerOrchestrator(o3, 100 ether, 0, 0);
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.InvalidMaxActiveOrchestrators.selector, 2, 3));
        bm.setMaxActiveOrchestrators(2);
        bm.setMaxActiveOrchestrators(3);
        assertEq(bm.maxActiveOrchestrators(), 3, "equal to the pool size is allowed");
    }

    function test_setFinderFee_setsAndEmits() public {
        vm.expectEmit(address(bm));
        emit IBondingManager.FinderFeeSet(500_000);
        bm.setFinderFee(500_000);
        assertEq(bm.finderFee(), 500_000, "finderFee");
    }

    function test_setFinderFee_revertsAboveHalf() public {
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.InvalidFinderFee.selector, 500_001));
        bm.setFinderFee(500_001);
    }

    function test_setMaxFeeBackfillRounds_setsAndEmits() public {
        vm.expectEmit(address(bm));
        emit IBondingManager.MaxFeeBackfillRoundsSet(6);
        bm.setMaxFeeBackfillRounds(6);
        assertEq(bm.maxFeeBackfillRounds(), 6, "maxFeeBackfillRounds");
    }

    function test_setMaxFeeBackfillRounds_revertsAboveMax() public {
        vm.expectRevert(abi.encodeWithSelector(IBondingManager.InvalidMaxFeeBackfillRounds.selector, 7, 6));
        bm.setMaxFeeBackfillRounds(7);
    }

    function test_setTicketBroker_setsAndEmits() public {
        vm.expectEmit(address(bm));
        emit IBondingManager.TicketBrokerSet(d1);
        bm.setTicketBroker(d1);
        assertEq(bm.ticketBroker(), d1, "ticketBroker");
    }

    function test_setVerifier_setsAndEmits() public {
        vm.expectEmit(address(bm));
        emit IBondingManager.VerifierSet(d1, true);
        bm.setVerifier(d1, true);
        assertTrue(bm.isVerifier(d1), "enabled");
        bm.setVerifier(d1, false);
        assertFalse(bm.isVerifier(d1), "disabled");
    }

    function test_setRoundsManager_setsAndEmits() public {
        vm.expectEmit(address(bm));
        emit IBondingManager.RoundsManagerSet(d1);
        bm.setRoundsManager(d1);
        assertEq(bm.roundsManager(), d1, "roundsManager");
    }

    function test_setMinter_setsAndEmits() public {
        vm.expectEmit(address(bm));
        emit IBondingManager.MinterSet(d1);
        bm.setMinter(d1);
        assertEq(bm.minter(), d1, "minter");
    }

    function test_addressSetters_revertOnZeroAddress() public {
        vm.expectRevert(_err(IBondingManager.ZeroAddress.selector));
        bm.setTicketBroker(address(0));
        vm.expectRevert(_err(IBondingManager.ZeroAddress.selector));
        bm.setRoundsManager(address(0));
        vm.expectRevert(_err(IBondingManager.ZeroAddress.selector));
        bm.setMinter(address(0));
    }

    function test_ownerSetters_revertWhenCallerNotOwner() public {
        bytes memory err = abi.encodeWithSelector(OwnableUnauthorizedAccount.selector, d1);
        vm.startPrank(d1);
        vm.expectRevert(err);
        bm.setUnbondingPeriod(3);
        vm.expectRevert(err);
        bm.setMinimumStake(1);
        vm.expectRevert(err);
        bm.setMaxActiveOrchestrators(10);
        vm.expectRevert(err);
        bm.setFinderFee(1);
        vm.expectRevert(err);
        bm.setMaxFeeBackfillRounds(1);
        vm.expectRevert(err);
        bm.setTicketBroker(d1);
        vm.expectRevert(err);
        bm.setVerifier(d1, true);
        vm.expectRevert(err);
        bm.setRoundsManager(d1);
        vm.expectRevert(err);
        bm.setMinter(d1);
        vm.stopPrank();
    }
}
