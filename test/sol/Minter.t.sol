// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "./utils/Test.sol";
import {LivepeerToken} from "../../contracts/LivepeerToken.sol";
import {Minter} from "../../contracts/Minter.sol";
import {IMinter} from "../../contracts/interfaces/IMinter.sol";

/// @dev Stands in for the BondingManager: reports a settable total bonded and forwards the BondingManager-only calls.
contract MockBondingManager {
    uint256 public getTotalBonded;

    function setTotalBonded(uint256 v) external {
        getTotalBonded = v;
    }

    function createReward(IMinter m, uint256 num, uint256 denom) external returns (uint256) {
        return m.createReward(num, denom);
    }

    function withdraw(IMinter m, address payable to, uint256 amount) external {
        m.trustedWithdrawETH(to, amount);
    }
}

contract RejectsEth {
    receive() external payable {
        revert("no");
    }
}

contract MinterTest is Test {
    error OwnableUnauthorizedAccount(address account);

    uint256 internal constant PPM = 1_000_000;
    uint256 internal constant SUPPLY = 10_000_000 ether;
    uint256 internal constant INFLATION = 1_000_000; // 0.1 % per round
    uint256 internal constant INFLATION_CHANGE = 3_000;
    uint256 internal constant TARGET = 500_000; // 50 %

    LivepeerToken internal token;
    Minter internal minter;
    MockBondingManager internal bm;
    address internal rm = makeAddr("roundsManager");
    address internal alice = makeAddr("alice");

    function setUp() public {
        token = new LivepeerToken();
        token.setMinter(address(this));
        token.mint(address(this), SUPPLY);
        minter = new Minter(address(token), INFLATION, INFLATION_CHANGE, TARGET);
        token.setMinter(address(minter));
        bm = new MockBondingManager();
        minter.setBondingManager(address(bm));
        minter.setRoundsManager(rm);
    }

    function _newRound() internal {
        vm.prank(rm);
        minter.setCurrentRewardTokens();
    }

    // ------------------------------------------------------------------------------------------------ constructor

    function test_constructor_storesParameters() public view {
        assertEq(minter.token(), address(token), "token");
        assertEq(minter.inflation(), INFLATION, "inflation");
        assertEq(minter.inflationChange(), INFLATION_CHANGE, "inflationChange");
        assertEq(minter.targetBondingRate(), TARGET, "targetBondingRate");
        assertEq(minter.owner(), address(this), "owner");
    }

    function test_constructor_revertsForZeroToken() public {
        vm.expectRevert(abi.encodeWithSelector(IMinter.ZeroAddress.selector));
        new Minter(address(0), INFLATION, INFLATION_CHANGE, TARGET);
    }

    function test_constructor_revertsForTargetAbovePpm() public {
        vm.expectRevert(abi.encodeWithSelector(IMinter.InvalidTargetBondingRate.selector, PPM + 1));
        new Minter(address(token), INFLATION, INFLATION_CHANGE, PPM + 1);
    }

    // ------------------------------------------------------------------------------------- setCurrentRewardTokens

    function test_setCurrentRewardTokens_raisesInflationBelowTarget() public {
        bm.setTotalBonded(SUPPLY / 4); // 25 % < 50 %
        uint256 expected = INFLATION + INFLATION_CHANGE;
        vm.expectEmit(address(minter));
        emit IMinter.SetCurrentRewardTokens(SUPPLY * expected / 1e9, expected);
        _newRound();
        assertEq(minter.inflation(), expected, "inflation up");
        assertEq(minter.currentMintableTokens(), SUPPLY * expected / 1e9, "mintable");
    }

    function test_setCurrentRewardTokens_lowersInflationAboveTarget() public {
        bm.setTotalBonded(SUPPLY * 3 / 4);
        _newRound();
        assertEq(minter.inflation(), INFLATION - INFLATION_CHANGE, "inflation down");
    }

    function test_setCurrentRewardTokens_keepsInflationAtTarget() public {
        bm.setTotalBonded(SUPPLY / 2);
        _newRound();
        assertEq(minter.inflation(), INFLATION, "inflation unchanged");
    }

    function test_setCurrentRewardTokens_floorsInflationAtZero() public {
        minter.setInflationChange(INFLATION * 2);
        bm.setTotalBonded(SUPPLY);
        _newRound();
        assertEq(minter.inflation(), 0, "floored at 0");
        assertEq(minter.currentMintableTokens(), 0, "nothing mintable");
    }

    function test_setCurrentRewardTokens_resetsMintedTokens() public {
        _newRound();
        bm.createReward(minter, 1, 2);
        assertGt(minter.currentMintedTokens(), 0, "minted some");
        _newRound();
        assertEq(minter.currentMintedTokens(), 0, "reset");
    }

    function test_setCurrentRewardTokens_revertsWhenCallerNotRoundsManager() public {
        vm.expectRevert(abi.encodeWithSelector(IMinter.OnlyRoundsManager.selector, alice));
        vm.prank(alice);
        minter.setCurrentRewardTokens();
    }

    /// @dev Inflation moves by exactly `inflationChange` toward the target each round, never below 0.
    function testFuzz_setCurrentRewardTokens_movesInflationTowardTarget(
        uint256 inflation,
        uint256 change,
        uint256 bonded,
        uint256 target
    ) public {
        inflation = bound(inflation, 0, 1e9);
        change = bound(change, 0, 1e8);
        bonded = bound(bonded, 0, SUPPLY);
        target = bound(target, 0, PPM);
        Minter m = new Minter(address(token), inflation, change, target);
        m.setBondingManager(address(bm));
        m.setRoundsManager(rm);
        bm.setTotalBonded(bonded);
        vm.prank(rm);
        m.setCurrentRewardTokens();
        uint256 got = m.inflation();
        if (bonded * PPM < target * SUPPLY) assertEq(got, inflation + change, "below target: up");
        else if (bonded * PPM > target * SUPPLY) assertEq(got, inflation > change ? inflation - change : 0, "above: down");
        else assertEq(got, inflation, "at target: unchanged");
        assertEq(m.currentMintableTokens(), SUPPLY * got / 1e9, "mintable follows inflation");
    }

    // ------------------------------------------------------------------------------------------------ createReward

    function test_createReward_mintsFractionToBondingManager() public {
        _newRound();
        uint256 mintable = minter.currentMintableTokens();
        uint256 minted = bm.createReward(minter, 1, 4);
        assertEq(minted, mintable / 4, "quarter");
        assertEq(token.balanceOf(address(bm)), mintable / 4, "sent to the BondingManager");
        assertEq(minter.currentMintedTokens(), mintable / 4, "counted");
    }

    function test_createReward_neverMintsBeyondTheRound() public {
        _newRound();
        uint256 mintable = minter.currentMintableTokens();
        bm.createReward(minter, 3, 4);
        uint256 second = bm.createReward(minter, 1, 2); // would exceed
        assertEq(second, mintable - mintable * 3 / 4, "capped at what is left");
        assertEq(minter.currentMintedTokens(), mintable, "all of it, no more");
        assertEq(bm.createReward(minter, 1, 1), 0, "nothing left");
    }

    function test_createReward_returnsZeroForZeroDenominator() public {
        _newRound();
        assertEq(bm.createReward(minter, 1, 0), 0, "nothing");
        assertEq(minter.currentMintedTokens(), 0, "nothing counted");
    }

    function test_createReward_revertsWhenCallerNotBondingManager() public {
        vm.expectRevert(abi.encodeWithSelector(IMinter.OnlyBondingManager.selector, alice));
        vm.prank(alice);
        minter.createReward(1, 1);
    }

    // ------------------------------------------------------------------------------------------------------- ETH

    function test_depositETH_holdsAndEmits() public {
        vm.deal(alice, 1 ether);
        vm.expectEmit(address(minter));
        emit IMinter.ETHDeposited(alice, 1 ether);
        vm.prank(alice);
        minter.depositETH{value: 1 ether}();
        assertEq(address(minter).balance, 1 ether, "held");
    }

    function test_trustedWithdrawETH_sendsToRecipient() public {
        vm.deal(address(minter), 2 ether);
        vm.expectEmit(address(minter));
        emit IMinter.ETHWithdrawn(alice, 1.5 ether);
        bm.withdraw(minter, payable(alice), 1.5 ether);
        assertEq(alice.balance, 1.5 ether, "paid");
        assertEq(address(minter).balance, 0.5 ether, "rest held");
    }

    function test_trustedWithdrawETH_revertsWhenCallerNotBondingManager() public {
        vm.deal(address(minter), 1 ether);
        vm.expectRevert(abi.encodeWithSelector(IMinter.OnlyBondingManager.selector, alice));
        vm.prank(alice);
        minter.trustedWithdrawETH(payable(alice), 1 ether);
    }

    function test_trustedWithdrawETH_revertsBeyondBalance() public {
        vm.deal(address(minter), 1 ether);
        vm.expectRevert(abi.encodeWithSelector(IMinter.InsufficientETH.selector, 2 ether, 1 ether));
        bm.withdraw(minter, payable(alice), 2 ether);
    }

    function test_trustedWithdrawETH_revertsWhenRecipientRejects() public {
        vm.deal(address(minter), 1 ether);
        address rejecter = address(new RejectsEth());
        vm.expectRevert(abi.encodeWithSelector(IMinter.EthTransferFailed.selector, rejecter, 1 ether));
        bm.withdraw(minter, payable(rejecter), 1 ether);
    }

    // ---------------------------------------------------------------------------------------------------- owner

    function test_setInflationChange_setsAndEmits() public {
        vm.expectEmit(address(minter));
        emit IMinter.InflationChangeSet(7);
        minter.setInflationChange(7);
        assertEq(minter.inflationChange(), 7, "set");
    }

    function test_setTargetBondingRate_setsAndEmits() public {
        vm.expectEmit(address(minter));
        emit IMinter.TargetBondingRateSet(PPM);
        minter.setTargetBondingRate(PPM);
        assertEq(minter.targetBondingRate(), PPM, "set");
    }

    function test_setTargetBondingRate_revertsAbovePpm() public {
        vm.expectRevert(abi.encodeWithSelector(IMinter.InvalidTargetBondingRate.selector, PPM + 1));
        minter.setTargetBondingRate(PPM + 1);
    }

    function test_setBondingManager_setsAndEmits() public {
        vm.expectEmit(address(minter));
        emit IMinter.BondingManagerSet(alice);
        minter.setBondingManager(alice);
        assertEq(minter.bondingManager(), alice, "set");
    }

    function test_setRoundsManager_setsAndEmits() public {
        vm.expectEmit(address(minter));
        emit IMinter.RoundsManagerSet(alice);
        minter.setRoundsManager(alice);
        assertEq(minter.roundsManager(), alice, "set");
    }

    function test_wiring_revertsForZeroAddress() public {
        vm.expectRevert(abi.encodeWithSelector(IMinter.ZeroAddress.selector));
        minter.setBondingManager(address(0));
        vm.expectRevert(abi.encodeWithSelector(IMinter.ZeroAddress.selector));
        minter.setRoundsManager(address(0));
    }

    function test_ownerSetters_revertWhenCallerNotOwner() public {
        vm.startPrank(alice);
        vm.expectRevert(abi.encodeWithSelector(OwnableUnauthorizedAccount.selector, alice));
        minter.setInflationChange(1);
        vm.expectRevert(abi.encodeWithSelector(OwnableUnauthorizedAccount.selector, alice));
        minter.setTargetBondingRate(1);
        vm.expectRevert(abi.encodeWithSelector(OwnableUnauthorizedAccount.selector, alice));
        minter.setBondingManager(alice);
        vm.expectRevert(abi.encodeWithSelector(OwnableUnauthorizedAccount.selector, alice));
        minter.setRoundsManager(alice);
        vm.stopPrank();
    }
}
