// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title IMinter
/// @notice Mints the per-round inflation (moved each round toward a target bonding rate) and holds the ETH that
/// pays fees until delegators withdraw it through the BondingManager.
interface IMinter {
    /// @notice Thrown when a BondingManager-only function is called by another account.
    error OnlyBondingManager(address caller);
    /// @notice Thrown when a RoundsManager-only function is called by another account.
    error OnlyRoundsManager(address caller);
    /// @notice Thrown when an address argument is the zero address.
    error ZeroAddress();
    /// @notice Thrown when the target bonding rate exceeds 1_000_000 ppm.
    error InvalidTargetBondingRate(uint256 targetBondingRate);
    /// @notice Thrown when the Minter's ETH balance cannot cover a withdrawal.
    error InsufficientETH(uint256 requested, uint256 available);
    /// @notice Thrown when the ETH transfer to `to` fails.
    error EthTransferFailed(address to, uint256 amount);

    /// @notice Emitted each round with the round's mintable tokens and the inflation (ppb) used for it.
    event SetCurrentRewardTokens(uint256 currentMintableTokens, uint256 currentInflation);
    /// @notice Emitted when the per-round inflation change (ppb) is set.
    event InflationChangeSet(uint256 inflationChange);
    /// @notice Emitted when the target bonding rate (ppm) is set.
    event TargetBondingRateSet(uint256 targetBondingRate);
    /// @notice Emitted when the BondingManager is wired.
    event BondingManagerSet(address indexed bondingManager);
    /// @notice Emitted when the RoundsManager is wired.
    event RoundsManagerSet(address indexed roundsManager);
    /// @notice Emitted when ETH is deposited for fees.
    event ETHDeposited(address indexed from, uint256 amount);
    /// @notice Emitted when the BondingManager pays out fee ETH.
    event ETHWithdrawn(address indexed to, uint256 amount);

    /// @notice The LPT contract this Minter mints.
    function token() external view returns (address);

    /// @notice The BondingManager (may call `createReward`, `trustedWithdrawETH`).
    function bondingManager() external view returns (address);

    /// @notice The RoundsManager (may call `setCurrentRewardTokens`).
    function roundsManager() external view returns (address);

    /// @notice Current inflation per round, in parts per billion of the total supply.
    function inflation() external view returns (uint256);

    /// @notice Change of `inflation` per round, in parts per billion.
    function inflationChange() external view returns (uint256);

    /// @notice Target bonding rate (bonded / total supply) in ppm.
    function targetBondingRate() external view returns (uint256);

    /// @notice Tokens mintable as rewards in the current round.
    function currentMintableTokens() external view returns (uint256);

    /// @notice Tokens already minted as rewards in the current round.
    function currentMintedTokens() external view returns (uint256);

    /// @notice Called by the RoundsManager when a round is initialised: moves `inflation` by `inflationChange`
    /// toward the target bonding rate (up when below it, down and floored at 0 when above it, unchanged when
    /// equal), then sets the round's mintable tokens to `totalSupply * inflation / 1e9` and resets the minted
    /// counter. Emits `SetCurrentRewardTokens`.
    function setCurrentRewardTokens() external;

    /// @notice Mints `currentMintableTokens * fracNum / fracDenom` LPT to the BondingManager, capped so the round
    /// never mints beyond its mintable tokens; returns the amount minted (0 when `fracDenom` is 0). BondingManager
    /// only.
    function createReward(uint256 fracNum, uint256 fracDenom) external returns (uint256);

    /// @notice Deposits ETH that pays fees (the TicketBroker sends redeemed ticket value here).
    function depositETH() external payable;

    /// @notice Sends `amount` ETH to `to`. BondingManager only (it has already debited the fees).
    function trustedWithdrawETH(address payable to, uint256 amount) external;

    /// @notice Sets the per-round inflation change (ppb). Owner only.
    function setInflationChange(uint256 newInflationChange) external;

    /// @notice Sets the target bonding rate (ppm, ≤ 1_000_000). Owner only.
    function setTargetBondingRate(uint256 newTargetBondingRate) external;

    /// @notice Wires the BondingManager. Owner only.
    function setBondingManager(address newBondingManager) external;

    /// @notice Wires the RoundsManager. Owner only.
    function setRoundsManager(address newRoundsManager) external;
}
