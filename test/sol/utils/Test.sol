// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Vm} from "./Vm.sol";

/// @notice Minimal test base: cheatcodes, assertions that revert with a message naming both values, `bound`,
/// account helpers, and the target/exclude lists forge's invariant engine reads from the test contract.
abstract contract Test {
    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    struct FuzzArtifactSelector {
        string artifact;
        bytes4[] selectors;
    }

    struct FuzzInterface {
        address addr;
        string[] artifacts;
    }

    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    bool public IS_TEST = true;

    address[] private _targetedContracts;
    address[] private _excludedContracts;
    address[] private _targetedSenders;
    address[] private _excludedSenders;
    FuzzSelector[] private _targetedSelectors;
    FuzzSelector[] private _excludedSelectors;
    string[] private _targetedArtifacts;
    string[] private _excludedArtifacts;
    FuzzArtifactSelector[] private _targetedArtifactSelectors;
    FuzzInterface[] private _targetedInterfaces;

    // ---------------------------------------------------------------- assertions

    function fail(string memory err) internal pure {
        revert(string.concat("assertion failed: ", err));
    }

    function assertTrue(bool cond) internal pure {
        if (!cond) fail("expected true");
    }

    function assertTrue(bool cond, string memory err) internal pure {
        if (!cond) fail(err);
    }

    function assertFalse(bool cond) internal pure {
        if (cond) fail("expected false");
    }

    function assertFalse(bool cond, string memory err) internal pure {
        if (cond) fail(err);
    }

    function assertEq(uint256 a, uint256 b) internal pure {
        assertEq(a, b, "");
    }

    function assertEq(uint256 a, uint256 b, string memory err) internal pure {
        if (a != b) fail(string.concat(err, " (", _u(a), " != ", _u(b), ")"));
    }

    function assertEq(int256 a, int256 b, string memory err) internal pure {
        if (a != b) fail(string.concat(err, " (int values differ)"));
    }

    function assertEq(address a, address b) internal pure {
        assertEq(a, b, "");
    }

    function assertEq(address a, address b, string memory err) internal pure {
        if (a != b) fail(string.concat(err, " (", _a(a), " != ", _a(b), ")"));
    }

    function assertEq(bool a, bool b, string memory err) internal pure {
        if (a != b) fail(string.concat(err, a ? " (true != false)" : " (false != true)"));
    }

    function assertEq(bytes32 a, bytes32 b, string memory err) internal pure {
        if (a != b) fail(string.concat(err, " (bytes32 values differ)"));
    }

    function assertEq(bytes memory a, bytes memory b, string memory err) internal pure {
        if (keccak256(a) != keccak256(b)) fail(string.concat(err, " (bytes differ)"));
    }

    function assertEq(string memory a, string memory b, string memory err) internal pure {
        if (keccak256(bytes(a)) != keccak256(bytes(b))) fail(string.concat(err, " (\"", a, "\" != \"", b, "\")"));
    }

    function assertNotEq(uint256 a, uint256 b, string memory err) internal pure {
        if (a == b) fail(string.concat(err, " (both ", _u(a), ")"));
    }

    function assertNotEq(address a, address b, string memory err) internal pure {
        if (a == b) fail(string.concat(err, " (both ", _a(a), ")"));
    }

    function assertLt(uint256 a, uint256 b, string memory err) internal pure {
        if (a >= b) fail(string.concat(err, " (", _u(a), " >= ", _u(b), ")"));
    }

    function assertGt(uint256 a, uint256 b, string memory err) internal pure {
        if (a <= b) fail(string.concat(err, " (", _u(a), " <= ", _u(b), ")"));
    }

    function assertLe(uint256 a, uint256 b) internal pure {
        assertLe(a, b, "");
    }

    function assertLe(uint256 a, uint256 b, string memory err) internal pure {
        if (a > b) fail(string.concat(err, " (", _u(a), " > ", _u(b), ")"));
    }

    function assertGe(uint256 a, uint256 b) internal pure {
        assertGe(a, b, "");
    }

    function assertGe(uint256 a, uint256 b, string memory err) internal pure {
        if (a < b) fail(string.concat(err, " (", _u(a), " < ", _u(b), ")"));
    }

    function assertApproxEqAbs(uint256 a, uint256 b, uint256 maxDelta) internal pure {
        assertApproxEqAbs(a, b, maxDelta, "");
    }

    function assertApproxEqAbs(uint256 a, uint256 b, uint256 maxDelta, string memory err) internal pure {
        uint256 d = a > b ? a - b : b - a;
        if (d > maxDelta) {
            fail(string.concat(err, " (", _u(a), " vs ", _u(b), ": delta ", _u(d), " > ", _u(maxDelta), ")"));
        }
    }

    /// @dev Relative tolerance in 1e18 = 100 %.
    function assertApproxEqRel(uint256 a, uint256 b, uint256 maxPercentDelta, string memory err) internal pure {
        if (b == 0) return assertEq(a, b, err);
        uint256 d = a > b ? a - b : b - a;
        if (d * 1e18 / b > maxPercentDelta) {
            fail(string.concat(err, " (", _u(a), " vs ", _u(b), ": relative delta too large)"));
        }
    }

    // ---------------------------------------------------------------- fuzz helpers

    /// @notice Maps any `x` into [min, max] (inclusive), keeping small inputs as they are so edge cases survive.
    function bound(uint256 x, uint256 min, uint256 max) internal pure returns (uint256) {
        require(min <= max, "bound: min > max");
        if (x >= min && x <= max) return x;
        uint256 size = max - min + 1;
        if (size == 0) return x; // full range
        return min + (x % size);
    }

    /// @notice A deterministic, labelled address derived from `name`.
    function makeAddr(string memory name) internal returns (address a) {
        a = vm.addr(uint256(keccak256(bytes(name))));
        vm.label(a, name);
    }

    // ---------------------------------------------------------------- invariant targets

    function targetContract(address a) internal {
        _targetedContracts.push(a);
    }

    function targetSelector(FuzzSelector memory s) internal {
        _targetedSelectors.push(s);
    }

    function targetSender(address a) internal {
        _targetedSenders.push(a);
    }

    function excludeContract(address a) internal {
        _excludedContracts.push(a);
    }

    function excludeSender(address a) internal {
        _excludedSenders.push(a);
    }

    function excludeSelector(FuzzSelector memory s) internal {
        _excludedSelectors.push(s);
    }

    function targetContracts() public view returns (address[] memory) {
        return _targetedContracts;
    }

    function targetSelectors() public view returns (FuzzSelector[] memory) {
        return _targetedSelectors;
    }

    function targetSenders() public view returns (address[] memory) {
        return _targetedSenders;
    }

    function excludeContracts() public view returns (address[] memory) {
        return _excludedContracts;
    }

    function excludeSenders() public view returns (address[] memory) {
        return _excludedSenders;
    }

    function excludeSelectors() public view returns (FuzzSelector[] memory) {
        return _excludedSelectors;
    }

    function targetArtifacts() public view returns (string[] memory) {
        return _targetedArtifacts;
    }

    function excludeArtifacts() public view returns (string[] memory) {
        return _excludedArtifacts;
    }

    function targetArtifactSelectors() public view returns (FuzzArtifactSelector[] memory) {
        return _targetedArtifactSelectors;
    }

    function targetInterfaces() public view returns (FuzzInterface[] memory) {
        return _targetedInterfaces;
    }

    // ---------------------------------------------------------------- formatting

    function _u(uint256 v) private pure returns (string memory) {
        if (v == 0) return "0";
        uint256 len;
        for (uint256 t = v; t != 0; t /= 10) {
            len++;
        }
        bytes memory b = new bytes(len);
        for (; v != 0; v /= 10) {
            // casting to 'uint8' is safe because a decimal digit plus 48 is below 256
            // forge-lint: disable-next-line(unsafe-typecast)
            b[--len] = bytes1(uint8(48 + v % 10));
        }
        return string(b);
    }

    function _a(address a) private pure returns (string memory) {
        bytes memory hexChars = "0123456789abcdef";
        bytes memory b = new bytes(42);
        b[0] = "0";
        b[1] = "x";
        uint160 v = uint160(a);
        for (uint256 i = 41; i > 1; i--) {
            b[i] = hexChars[v & 0xf];
            v >>= 4;
        }
        return string(b);
    }
}
