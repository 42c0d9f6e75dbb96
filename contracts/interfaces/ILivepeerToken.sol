// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @title ILivepeerToken
/// @notice The Livepeer Token (LPT): an 18-decimal ERC-20 that only the minter can mint and any holder can burn.
interface ILivepeerToken is IERC20 {
    /// @notice Thrown when `mint` is called by anyone but the minter.
    error NotMinter(address caller);
    /// @notice Thrown when an address argument is the zero address.
    error ZeroAddress();

    /// @notice Emitted when the owner hands the minter role to `minter`.
    event MinterSet(address indexed minter);

    /// @notice The only account allowed to mint (the Minter contract once wired).
    function minter() external view returns (address);

    /// @notice Sets the minter. Owner only; reverts `ZeroAddress` for the zero address.
    function setMinter(address newMinter) external;

    /// @notice Mints `amount` LPT to `to`. Minter only (`NotMinter`).
    function mint(address to, uint256 amount) external;

    /// @notice Burns `amount` LPT from the caller's own balance.
    function burn(uint256 amount) external;
}
