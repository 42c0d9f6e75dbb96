// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "./utils/Test.sol";
import {LivepeerToken} from "../../contracts/LivepeerToken.sol";
import {ILivepeerToken} from "../../contracts/interfaces/ILivepeerToken.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

contract LivepeerTokenTest is Test {
    error OwnableUnauthorizedAccount(address account);
    error ERC20InsufficientBalance(address sender, uint256 balance, uint256 needed);

    LivepeerToken internal token;
    address internal minter = makeAddr("minter");
    address internal alice = makeAddr("alice");

    function setUp() public {
        token = new LivepeerToken();
        token.setMinter(minter);
    }

    function test_metadata_isLivepeerTokenLptWith18Decimals() public view {
        assertEq(token.name(), "Livepeer Token", "name");
        assertEq(token.symbol(), "LPT", "symbol");
        assertEq(uint256(token.decimals()), 18, "decimals");
        assertEq(token.owner(), address(this), "deployer owns");
        assertEq(token.totalSupply(), 0, "no supply at deploy");
    }

    function test_setMinter_setsAndEmits() public {
        address next = makeAddr("next");
        vm.expectEmit(address(token));
        emit ILivepeerToken.MinterSet(next);
        token.setMinter(next);
        assertEq(token.minter(), next, "minter");
    }

    function test_setMinter_revertsForZeroAddress() public {
        vm.expectRevert(abi.encodeWithSelector(ILivepeerToken.ZeroAddress.selector));
        token.setMinter(address(0));
    }

    function test_setMinter_revertsWhenCallerNotOwner() public {
        vm.expectRevert(abi.encodeWithSelector(OwnableUnauthorizedAccount.selector, alice));
        vm.prank(alice);
        token.setMinter(alice);
    }

    function test_mint_byMinterCreditsBalanceAndSupply() public {
        vm.expectEmit(address(token));
        emit IERC20.Transfer(address(0), alice, 5 ether);
        vm.prank(minter);
        token.mint(alice, 5 ether);
        assertEq(token.balanceOf(alice), 5 ether, "balance");
        assertEq(token.totalSupply(), 5 ether, "supply");
    }

    function test_mint_revertsWhenCallerNotMinter() public {
        vm.expectRevert(abi.encodeWithSelector(ILivepeerToken.NotMinter.selector, alice));
        vm.prank(alice);
        token.mint(alice, 1);
    }

    function test_mint_revertsForOwnerOnceMinterHandedOver() public {
        vm.expectRevert(abi.encodeWithSelector(ILivepeerToken.NotMinter.selector, address(this)));
        token.mint(address(this), 1);
    }

    function test_burn_removesFromCallerBalanceAndSupply() public {
        vm.prank(minter);
        token.mint(alice, 5 ether);
        vm.expectEmit(address(token));
        emit IERC20.Transfer(alice, address(0), 2 ether);
        vm.prank(alice);
        token.burn(2 ether);
        assertEq(token.balanceOf(alice), 3 ether, "balance");
        assertEq(token.totalSupply(), 3 ether, "supply");
    }

    function test_burn_revertsBeyondBalance() public {
        vm.prank(minter);
        token.mint(alice, 1 ether);
        vm.expectRevert(abi.encodeWithSelector(ERC20InsufficientBalance.selector, alice, 1 ether, 1 ether + 1));
        vm.prank(alice);
        token.burn(1 ether + 1);
    }

    function test_transferFrom_spendsAllowance() public {
        address bob = makeAddr("bob");
        vm.prank(minter);
        token.mint(alice, 3 ether);
        vm.prank(alice);
        token.approve(bob, 2 ether);
        vm.prank(bob);
        assertTrue(token.transferFrom(alice, bob, 2 ether), "transferFrom returns true");
        assertEq(token.balanceOf(bob), 2 ether, "bob balance");
        assertEq(token.allowance(alice, bob), 0, "allowance spent");
    }

    function testFuzz_mintThenBurn_supplyEqualsSumOfBalances(uint256 a, uint256 b, uint256 burnA) public {
        a = bound(a, 0, 1e30);
        b = bound(b, 0, 1e30);
        burnA = bound(burnA, 0, a);
        address bob = makeAddr("bob");
        vm.startPrank(minter);
        token.mint(alice, a);
        token.mint(bob, b);
        vm.stopPrank();
        vm.prank(alice);
        token.burn(burnA);
        assertEq(token.totalSupply(), token.balanceOf(alice) + token.balanceOf(bob), "supply = balances");
        assertEq(token.balanceOf(alice), a - burnA, "alice");
    }
}
