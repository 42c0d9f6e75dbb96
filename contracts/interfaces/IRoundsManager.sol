// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title IRoundsManager
/// @notice Rounds of `roundLength` blocks. Round 1 starts at the deployment block. Each round must be initialised
/// (once, by anyone) before stake can change in it; initialisation records the round's block hash (used for
/// ticket expiry) and snapshots the active stake and the mintable rewards for the round.
interface IRoundsManager {
    /// @notice Thrown by `initializeRound` when the current round is already initialised.
    error RoundAlreadyInitialized(uint256 round);
    /// @notice Thrown when a round length of zero is given.
    error InvalidRoundLength(uint256 roundLength);
    /// @notice Thrown when the round lock amount exceeds 1_000_000 ppm.
    error InvalidRoundLockAmount(uint256 roundLockAmount);
    /// @notice Thrown when an address argument is the zero address.
    error ZeroAddress();

    /// @notice Emitted when `round` is initialised; `blockHash` is the hash of the block before initialisation.
    event NewRound(uint256 indexed round, bytes32 blockHash);
    /// @notice Emitted when the round length changes; it applies from `effectiveRound` (the next round).
    event RoundLengthSet(uint256 roundLength, uint256 effectiveRound);
    /// @notice Emitted when the round lock amount (ppm) changes.
    event RoundLockAmountSet(uint256 roundLockAmount);
    /// @notice Emitted when the BondingManager is wired.
    event BondingManagerSet(address indexed bondingManager);
    /// @notice Emitted when the Minter is wired.
    event MinterSet(address indexed minter);

    /// @notice Blocks per round, as last set; it applies from `lastRoundLengthUpdateRound()`.
    function roundLength() external view returns (uint256);

    /// @notice Parts per million of a round, at its end, during which orchestrators cannot change their cuts.
    function roundLockAmount() external view returns (uint256);

    /// @notice The round from which `roundLength()` applies.
    function lastRoundLengthUpdateRound() external view returns (uint256);

    /// @notice The first block of `lastRoundLengthUpdateRound()`.
    function lastRoundLengthUpdateStartBlock() external view returns (uint256);

    /// @notice The current block number.
    function blockNum() external view returns (uint256);

    /// @notice The current round number (≥ 1). Never jumps when the round length changes.
    function currentRound() external view returns (uint256);

    /// @notice The first block of the current round.
    function currentRoundStartBlock() external view returns (uint256);

    /// @notice The first block of the round after the current one (the current round's length never changes
    /// once it has started, so this is fixed for the whole round).
    function nextRoundStartBlock() external view returns (uint256);

    /// @notice The last round that was initialised (0 before the first initialisation).
    function lastInitializedRound() external view returns (uint256);

    /// @notice Whether the current round has been initialised.
    function currentRoundInitialized() external view returns (bool);

    /// @notice Whether the current round is in its lock window (the last `roundLockAmount` ppm of its blocks).
    function currentRoundLocked() external view returns (bool);

    /// @notice The block hash recorded when `round` was initialised; zero for a round never initialised.
    function blockHashForRound(uint256 round) external view returns (bytes32);

    /// @notice The BondingManager notified on each new round.
    function bondingManager() external view returns (address);

    /// @notice The Minter notified on each new round.
    function minter() external view returns (address);

    /// @notice Initialises the current round: records `blockhash(block.number - 1)`, then snapshots the active stake
    /// in the BondingManager and the round's mintable tokens in the Minter. Anyone may call it, once per round
    /// (`RoundAlreadyInitialized`). Emits `NewRound`.
    function initializeRound() external;

    /// @notice Sets the round length (> 0, `InvalidRoundLength`), applying from the next round. Owner only.
    function setRoundLength(uint256 newRoundLength) external;

    /// @notice Sets the round lock amount in ppm (≤ 1_000_000, `InvalidRoundLockAmount`). Owner only.
    function setRoundLockAmount(uint256 newRoundLockAmount) external;

    /// @notice Wires the BondingManager. Owner only; `ZeroAddress` for the zero address.
    function setBondingManager(address newBondingManager) external;

    /// @notice Wires the Minter. Owner only; `ZeroAddress` for the zero address.
    function setMinter(address newMinter) external;
}
