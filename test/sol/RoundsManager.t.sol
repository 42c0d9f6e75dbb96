// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "./utils/Test.sol";
import {RoundsManager} from "../../contracts/RoundsManager.sol";
import {IRoundsManager} from "../../contracts/interfaces/IRoundsManager.sol";

/// @dev Records the round-start notifications the RoundsManager sends.
contract RoundHooks {
    uint256 public activeStakeCalls;
    uint256 public rewardTokenCalls;
    uint256 public lastRoundSeen;

    function setCurrentRoundTotalActiveStake() external {
        activeStakeCalls++;
        lastRoundSeen = IRoundsManager(msg.sender).currentRound();
    }

    function setCurrentRewardTokens() external {
        // The spec's order: the active stake snapshot first, then the mintable tokens.
        require(activeStakeCalls == rewardTokenCalls + 1, "RoundHooks: minter called before bonding manager");
        rewardTokenCalls++;
    }
}

contract RoundsManagerTest is Test {
    error OwnableUnauthorizedAccount(address account);

    uint256 internal constant PPM = 1_000_000;
    uint256 internal constant LENGTH = 100;

    RoundsManager internal rm;
    RoundHooks internal hooks;
    uint256 internal deployBlock;
    address internal alice = makeAddr("alice");

    function setUp() public {
        vm.roll(1_000);
        deployBlock = block.number;
        rm = new RoundsManager(LENGTH);
        hooks = new RoundHooks();
        rm.setBondingManager(address(hooks));
        rm.setMinter(address(hooks));
    }

    // ------------------------------------------------------------------------------------------------ round math

    function test_constructor_startsRoundOneAtDeployBlock() public view {
        assertEq(rm.currentRound(), 1, "round 1");
        assertEq(rm.currentRoundStartBlock(), deployBlock, "starts at deploy block");
        assertEq(rm.nextRoundStartBlock(), deployBlock + LENGTH, "next round");
        assertEq(rm.roundLength(), LENGTH, "length");
        assertEq(rm.lastRoundLengthUpdateRound(), 1, "update round");
        assertEq(rm.lastRoundLengthUpdateStartBlock(), deployBlock, "update start");
        assertEq(rm.lastInitializedRound(), 0, "nothing initialised");
        assertFalse(rm.currentRoundInitialized(), "round 1 not initialised");
        assertEq(rm.blockNum(), deployBlock, "blockNum");
    }

    function test_constructor_revertsForZeroRoundLength() public {
        vm.expectRevert(abi.encodeWithSelector(IRoundsManager.InvalidRoundLength.selector, 0));
        new RoundsManager(0);
    }

    function test_currentRound_advancesEveryRoundLengthBlocks() public {
        vm.roll(deployBlock + LENGTH - 1);
        assertEq(rm.currentRound(), 1, "last block of round 1");
        vm.roll(deployBlock + LENGTH);
        assertEq(rm.currentRound(), 2, "first block of round 2");
        assertEq(rm.currentRoundStartBlock(), deployBlock + LENGTH, "round 2 start");
        vm.roll(deployBlock + 10 * LENGTH + 5);
        assertEq(rm.currentRound(), 11, "round 11");
        assertEq(rm.currentRoundStartBlock(), deployBlock + 10 * LENGTH, "round 11 start");
    }

    // -------------------------------------------------------------------------------------------- initializeRound

    function test_initializeRound_recordsBlockHashAndNotifies() public {
        vm.roll(deployBlock + 3 * LENGTH + 7);
        bytes32 expected = blockhash(block.number - 1);
        vm.expectEmit(address(rm));
        emit IRoundsManager.NewRound(4, expected);
        rm.initializeRound();
        assertEq(rm.blockHashForRound(4), expected, "block hash");
        assertEq(rm.lastInitializedRound(), 4, "last initialised");
        assertTrue(rm.currentRoundInitialized(), "initialised");
        assertEq(hooks.activeStakeCalls(), 1, "bonding manager notified");
        assertEq(hooks.rewardTokenCalls(), 1, "minter notified");
        assertEq(hooks.lastRoundSeen(), 4, "notified after the round is recorded");
    }

    function test_initializeRound_revertsWhenAlreadyInitialized() public {
        rm.initializeRound();
        vm.expectRevert(abi.encodeWithSelector(IRoundsManager.RoundAlreadyInitialized.selector, 1));
        rm.initializeRound();
    }

    function test_initializeRound_worksAgainInTheNextRound() public {
        rm.initializeRound();
        vm.roll(rm.nextRoundStartBlock());
        assertFalse(rm.currentRoundInitialized(), "new round not initialised");
        rm.initializeRound();
        assertEq(rm.lastInitializedRound(), 2, "round 2");
    }

    function test_initializeRound_skippedRoundsKeepZeroBlockHash() public {
        rm.initializeRound();
        vm.roll(deployBlock + 5 * LENGTH);
        rm.initializeRound();
        assertEq(rm.blockHashForRound(3), bytes32(0), "round 3 was never initialised");
        assertEq(rm.blockHashForRound(99), bytes32(0), "future round");
        assertTrue(rm.blockHashForRound(6) != bytes32(0), "round 6 recorded");
    }

    function test_initializeRound_anyoneMayCall() public {
        vm.prank(alice);
        rm.initializeRound();
        assertEq(rm.lastInitializedRound(), 1, "initialised by a stranger");
    }

    // --------------------------------------------------------------------------------------------- setRoundLength

    function test_setRoundLength_appliesFromNextRound() public {
        vm.roll(deployBlock + 30); // inside round 1
        vm.expectEmit(address(rm));
        emit IRoundsManager.RoundLengthSet(40, 2);
        rm.setRoundLength(40);
        assertEq(rm.currentRound(), 1, "still round 1");
        assertEq(rm.currentRoundStartBlock(), deployBlock, "round 1 keeps its start");
        assertEq(rm.nextRoundStartBlock(), deployBlock + LENGTH, "round 1 keeps its length");
        assertEq(rm.lastRoundLengthUpdateRound(), 2, "applies from round 2");
        assertEq(rm.lastRoundLengthUpdateStartBlock(), deployBlock + LENGTH, "round 2 start");
        vm.roll(deployBlock + LENGTH + 39);
        assertEq(rm.currentRound(), 2, "round 2 lasts 40 blocks");
        vm.roll(deployBlock + LENGTH + 40);
        assertEq(rm.currentRound(), 3, "round 3");
        assertEq(rm.nextRoundStartBlock(), deployBlock + LENGTH + 80, "round 4 start");
    }

    function test_setRoundLength_twiceInARoundKeepsTheLast() public {
        vm.roll(deployBlock + 10);
        rm.setRoundLength(40);
        rm.setRoundLength(7);
        assertEq(rm.roundLength(), 7, "last set");
        assertEq(rm.nextRoundStartBlock(), deployBlock + LENGTH, "current round untouched");
        vm.roll(deployBlock + LENGTH + 7);
        assertEq(rm.currentRound(), 3, "rounds of 7 after the change");
    }

    function test_setRoundLength_revertsForZero() public {
        vm.expectRevert(abi.encodeWithSelector(IRoundsManager.InvalidRoundLength.selector, 0));
        rm.setRoundLength(0);
    }

    function test_setRoundLength_revertsWhenCallerNotOwner() public {
        vm.expectRevert(abi.encodeWithSelector(OwnableUnauthorizedAccount.selector, alice));
        vm.prank(alice);
        rm.setRoundLength(10);
    }

    /// @dev Round arithmetic across two length changes: the round number never jumps or goes back, and every
    /// round has the length in force when it started.
    function testFuzz_setRoundLength_roundsNeverJump(uint256 l1, uint256 l2, uint256 at1, uint256 at2, uint256 probe)
        public
    {
        l1 = bound(l1, 1, 500);
        l2 = bound(l2, 1, 500);
        at1 = bound(at1, 0, 1_000);
        at2 = bound(at2, 0, 1_000);
        probe = bound(probe, 1, 3_000);

        vm.roll(deployBlock + at1);
        uint256 before = rm.currentRound();
        uint256 end1 = rm.nextRoundStartBlock();
        rm.setRoundLength(l1);
        assertEq(rm.currentRound(), before, "no jump at the first change");
        assertEq(rm.nextRoundStartBlock(), end1, "current round unchanged by the first change");

        vm.roll(block.number + at2);
        uint256 mid = rm.currentRound();
        uint256 midStart = rm.currentRoundStartBlock();
        uint256 end2 = rm.nextRoundStartBlock();
        rm.setRoundLength(l2);
        assertEq(rm.currentRound(), mid, "no jump at the second change");
        assertEq(rm.currentRoundStartBlock(), midStart, "start unchanged by the second change");
        assertEq(rm.nextRoundStartBlock(), end2, "current round unchanged by the second change");

        // Walk forward round by round: each round starts where the previous ended and numbers go up by one.
        uint256 round = mid;
        uint256 start = midStart;
        uint256 target = block.number + probe;
        while (true) {
            vm.roll(start);
            assertEq(rm.currentRound(), round, "round at its start block");
            assertEq(rm.currentRoundStartBlock(), start, "start block");
            uint256 next = rm.nextRoundStartBlock();
            assertGt(next, start, "rounds have length");
            if (round > mid) assertEq(next - start, l2, "rounds after the second change use l2");
            vm.roll(next - 1);
            assertEq(rm.currentRound(), round, "round at its last block");
            if (next > target) break;
            (round, start) = (round + 1, next);
        }
    }

    // ------------------------------------------------------------------------------------------ round lock window

    function test_currentRoundLocked_inTheLastPartOfTheRound() public {
        vm.expectEmit(address(rm));
        emit IRoundsManager.RoundLockAmountSet(100_000);
        rm.setRoundLockAmount(100_000); // last 10 of 100 blocks
        assertEq(rm.roundLockAmount(), 100_000, "set");
        vm.roll(deployBlock + 89);
        assertFalse(rm.currentRoundLocked(), "block 89 open");
        vm.roll(deployBlock + 90);
        assertTrue(rm.currentRoundLocked(), "block 90 locked");
        vm.roll(deployBlock + 99);
        assertTrue(rm.currentRoundLocked(), "last block locked");
        vm.roll(deployBlock + 100);
        assertFalse(rm.currentRoundLocked(), "next round open");
    }

    function test_currentRoundLocked_neverWithZeroLockAmount() public {
        vm.roll(deployBlock + LENGTH - 1);
        assertFalse(rm.currentRoundLocked(), "no lock window");
    }

    function test_setRoundLockAmount_revertsAbovePpm() public {
        vm.expectRevert(abi.encodeWithSelector(IRoundsManager.InvalidRoundLockAmount.selector, PPM + 1));
        rm.setRoundLockAmount(PPM + 1);
    }

    function test_setRoundLockAmount_revertsWhenCallerNotOwner() public {
        vm.expectRevert(abi.encodeWithSelector(OwnableUnauthorizedAccount.selector, alice));
        vm.prank(alice);
        rm.setRoundLockAmount(1);
    }

    // --------------------------------------------------------------------------------------------------- wiring

    function test_setBondingManager_setsAndEmits() public {
        vm.expectEmit(address(rm));
        emit IRoundsManager.BondingManagerSet(alice);
        rm.setBondingManager(alice);
        assertEq(rm.bondingManager(), alice, "set");
    }

    function test_setMinter_setsAndEmits() public {
        vm.expectEmit(address(rm));
        emit IRoundsManager.MinterSet(alice);
        rm.setMinter(alice);
        assertEq(rm.minter(), alice, "set");
    }

    function test_wiring_revertsForZeroAddress() public {
        vm.expectRevert(abi.encodeWithSelector(IRoundsManager.ZeroAddress.selector));
        rm.setBondingManager(address(0));
        vm.expectRevert(abi.encodeWithSelector(IRoundsManager.ZeroAddress.selector));
        rm.setMinter(address(0));
    }

    function test_wiring_revertsWhenCallerNotOwner() public {
        vm.startPrank(alice);
        vm.expectRevert(abi.encodeWithSelector(OwnableUnauthorizedAccount.selector, alice));
        rm.setBondingManager(alice);
        vm.expectRevert(abi.encodeWithSelector(OwnableUnauthorizedAccount.selector, alice));
        rm.setMinter(alice);
        vm.stopPrank();
    }
}
