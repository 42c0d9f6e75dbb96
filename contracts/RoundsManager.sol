// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IRoundsManager} from "./interfaces/IRoundsManager.sol";
import {IBondingManager} from "./interfaces/IBondingManager.sol";
import {IMinter} from "./interfaces/IMinter.sol";

/// @title RoundsManager
/// @notice Rounds of `roundLength` blocks, round 1 starting at the deployment block, initialised once each.
contract RoundsManager is IRoundsManager, Ownable {
    uint256 private constant PPM = 1_000_000;

    /// @inheritdoc IRoundsManager
    uint256 public roundLength;
    /// @inheritdoc IRoundsManager
    uint256 public lastRoundLengthUpdateRound;
    /// @inheritdoc IRoundsManager
    uint256 public lastRoundLengthUpdateStartBlock;
    /// @inheritdoc IRoundsManager
    uint256 public roundLockAmount;
    /// @inheritdoc IRoundsManager
    uint256 public lastInitializedRound;
    /// @inheritdoc IRoundsManager
    address public bondingManager;
    /// @inheritdoc IRoundsManager
    address public minter;

    // The segment in force before the last length update, for blocks before `lastRoundLengthUpdateStartBlock`
    // (a new length only applies from the next round, so the current round may still be on the old one).
    uint256 private _prevRoundLength;
    uint256 private _prevUpdateRound;
    uint256 private _prevUpdateStartBlock;

    mapping(uint256 round => bytes32 blockHash) private _blockHashForRound;

    constructor(uint256 initialRoundLength) Ownable(msg.sender) {
        if (initialRoundLength == 0) revert InvalidRoundLength(0);
        roundLength = initialRoundLength;
        lastRoundLengthUpdateRound = 1;
        lastRoundLengthUpdateStartBlock = block.number;
        emit RoundLengthSet(initialRoundLength, 1);
    }

    /// @inheritdoc IRoundsManager
    function initializeRound() external {
        uint256 round = currentRound();
        if (round == lastInitializedRound) revert RoundAlreadyInitialized(round);
        bytes32 blockHash = blockhash(block.number - 1);
        _blockHashForRound[round] = blockHash;
        lastInitializedRound = round;
        emit NewRound(round, blockHash);
        IBondingManager(bondingManager).setCurrentRoundTotalActiveStake();
        IMinter(minter).setCurrentRewardTokens();
    }

    /// @inheritdoc IRoundsManager
    function setRoundLength(uint256 newRoundLength) external onlyOwner {
        if (newRoundLength == 0) revert InvalidRoundLength(0);
        if (block.number >= lastRoundLengthUpdateStartBlock) {
            // The current segment becomes the previous one; the new one starts with the next round.
            (uint256 round, uint256 startBlock) = _currentRoundAndStart();
            _prevRoundLength = roundLength;
            _prevUpdateRound = lastRoundLengthUpdateRound;
            _prevUpdateStartBlock = lastRoundLengthUpdateStartBlock;
            lastRoundLengthUpdateRound = round + 1;
            lastRoundLengthUpdateStartBlock = startBlock + roundLength;
        }
        // Otherwise a change is already pending for the next round: replace it, the current segment stays.
        roundLength = newRoundLength;
        emit RoundLengthSet(newRoundLength, lastRoundLengthUpdateRound);
    }

    /// @inheritdoc IRoundsManager
    function setRoundLockAmount(uint256 newRoundLockAmount) external onlyOwner {
        if (newRoundLockAmount > PPM) revert InvalidRoundLockAmount(newRoundLockAmount);
        roundLockAmount = newRoundLockAmount;
        emit RoundLockAmountSet(newRoundLockAmount);
    }

    /// @inheritdoc IRoundsManager
    function setBondingManager(address newBondingManager) external onlyOwner {
        if (newBondingManager == address(0)) revert ZeroAddress();
        bondingManager = newBondingManager;
        emit BondingManagerSet(newBondingManager);
    }

    /// @inheritdoc IRoundsManager
    function setMinter(address newMinter) external onlyOwner {
        if (newMinter == address(0)) revert ZeroAddress();
        minter = newMinter;
        emit MinterSet(newMinter);
    }

    /// @inheritdoc IRoundsManager
    function blockNum() external view returns (uint256) {
        return block.number;
    }

    /// @inheritdoc IRoundsManager
    function currentRound() public view returns (uint256 round) {
        (round,) = _currentRoundAndStart();
    }

    /// @inheritdoc IRoundsManager
    function currentRoundStartBlock() public view returns (uint256 startBlock) {
        (, startBlock) = _currentRoundAndStart();
    }

    /// @inheritdoc IRoundsManager
    function nextRoundStartBlock() public view returns (uint256) {
        (, uint256 startBlock) = _currentRoundAndStart();
        return startBlock + _currentLength();
    }

    /// @inheritdoc IRoundsManager
    function currentRoundInitialized() external view returns (bool) {
        return lastInitializedRound == currentRound();
    }

    /// @inheritdoc IRoundsManager
    function currentRoundLocked() external view returns (bool) {
        (, uint256 startBlock) = _currentRoundAndStart();
        uint256 length = _currentLength();
        uint256 lockBlocks = length * roundLockAmount / PPM;
        return block.number - startBlock >= length - lockBlocks;
    }

    /// @inheritdoc IRoundsManager
    function blockHashForRound(uint256 round) external view returns (bytes32) {
        return _blockHashForRound[round];
    }

    function _currentLength() private view returns (uint256) {
        return block.number >= lastRoundLengthUpdateStartBlock ? roundLength : _prevRoundLength;
    }

    function _currentRoundAndStart() private view returns (uint256 round, uint256 startBlock) {
        uint256 baseRound;
        uint256 baseBlock;
        uint256 length;
        if (block.number >= lastRoundLengthUpdateStartBlock) {
            (baseRound, baseBlock, length) = (lastRoundLengthUpdateRound, lastRoundLengthUpdateStartBlock, roundLength);
        } else {
            (baseRound, baseBlock, length) = (_prevUpdateRound, _prevUpdateStartBlock, _prevRoundLength);
        }
        uint256 elapsed = (block.number - baseBlock) / length;
        round = baseRound + elapsed;
        startBlock = baseBlock + elapsed * length;
    }
}
