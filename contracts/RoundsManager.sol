// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IRoundsManager} from "./interfaces/IRoundsManager.sol";
import {IBondingManager} from "./interfaces/IBondingManager.sol";
import {IMinter} from "./interfaces/IMinter.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

/// @title RoundsManager
/// @notice Rounds of `roundLength` blocks, round 1 starting at the deployment block, initialised once each.
contract RoundsManager is IRoundsManager, Ownable {
    using SafeCast for uint256;

    uint256 private constant PPM = 1_000_000;

    /// @dev The round arithmetic in one slot: `roundLength` applies from `updateRound`, whose first block is
    /// `updateStartBlock`; before that block the previous segment (`prev*`) applies, since a new length only takes
    /// effect from the next round.
    struct Schedule {
        uint64 roundLength;
        uint64 updateRound;
        uint64 updateStartBlock;
        uint64 roundLockAmount;
    }

    struct PrevSchedule {
        uint64 roundLength;
        uint64 updateRound;
        uint64 updateStartBlock;
        uint64 lastInitializedRound;
    }

    Schedule private _schedule;
    PrevSchedule private _prev;

    /// @inheritdoc IRoundsManager
    address public bondingManager;
    /// @inheritdoc IRoundsManager
    address public minter;

    mapping(uint256 round => bytes32 blockHash) private _blockHashForRound;

    constructor(uint256 initialRoundLength) Ownable(msg.sender) {
        if (initialRoundLength == 0) revert InvalidRoundLength(0);
        _schedule = Schedule({
            roundLength: initialRoundLength.toUint64(),
            updateRound: 1,
            updateStartBlock: block.number.toUint64(),
            roundLockAmount: 0
        });
        emit RoundLengthSet(initialRoundLength, 1);
    }

    /// @inheritdoc IRoundsManager
    function initializeRound() external {
        (uint256 round,,) = _currentRound(_schedule);
        if (round == _prev.lastInitializedRound) revert RoundAlreadyInitialized(round);
        bytes32 blockHash = blockhash(block.number - 1);
        _blockHashForRound[round] = blockHash;
        _prev.lastInitializedRound = uint64(round);
        emit NewRound(round, blockHash);
        IBondingManager(bondingManager).setCurrentRoundTotalActiveStake();
        IMinter(minter).setCurrentRewardTokens();
    }

    /// @inheritdoc IRoundsManager
    function setRoundLength(uint256 newRoundLength) external onlyOwner {
        if (newRoundLength == 0) revert InvalidRoundLength(0);
        Schedule memory schedule = _schedule;
        if (block.number >= schedule.updateStartBlock) {
            // The current segment becomes the previous one; the new one starts with the next round.
            (uint256 round, uint256 startBlock, uint256 length) = _currentRound(schedule);
            PrevSchedule storage prev = _prev;
            prev.roundLength = schedule.roundLength;
            prev.updateRound = schedule.updateRound;
            prev.updateStartBlock = schedule.updateStartBlock;
            schedule.updateRound = (round + 1).toUint64();
            schedule.updateStartBlock = (startBlock + length).toUint64();
        }
        // Otherwise a change is already pending for the next round: replace it, the current segment stays.
        schedule.roundLength = newRoundLength.toUint64();
        _schedule = schedule;
        emit RoundLengthSet(newRoundLength, schedule.updateRound);
    }

    /// @inheritdoc IRoundsManager
    function setRoundLockAmount(uint256 newRoundLockAmount) external onlyOwner {
        if (newRoundLockAmount > PPM) revert InvalidRoundLockAmount(newRoundLockAmount);
        _schedule.roundLockAmount = uint64(newRoundLockAmount);
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
    function roundLength() external view returns (uint256) {
        return _schedule.roundLength;
    }

    /// @inheritdoc IRoundsManager
    function lastRoundLengthUpdateRound() external view returns (uint256) {
        return _schedule.updateRound;
    }

    /// @inheritdoc IRoundsManager
    function lastRoundLengthUpdateStartBlock() external view returns (uint256) {
        return _schedule.updateStartBlock;
    }

    /// @inheritdoc IRoundsManager
    function roundLockAmount() external view returns (uint256) {
        return _schedule.roundLockAmount;
    }

    /// @inheritdoc IRoundsManager
    function lastInitializedRound() external view returns (uint256) {
        return _prev.lastInitializedRound;
    }

    /// @inheritdoc IRoundsManager
    function blockNum() external view returns (uint256) {
        return block.number;
    }

    /// @inheritdoc IRoundsManager
    function currentRound() external view returns (uint256 round) {
        (round,,) = _currentRound(_schedule);
    }

    /// @inheritdoc IRoundsManager
    function currentRoundStartBlock() external view returns (uint256 startBlock) {
        (, startBlock,) = _currentRound(_schedule);
    }

    /// @inheritdoc IRoundsManager
    function nextRoundStartBlock() external view returns (uint256) {
        (, uint256 startBlock, uint256 length) = _currentRound(_schedule);
        return startBlock + length;
    }

    /// @inheritdoc IRoundsManager
    function currentRoundInitialized() external view returns (bool) {
        (uint256 round,,) = _currentRound(_schedule);
        return _prev.lastInitializedRound == round;
    }

    /// @inheritdoc IRoundsManager
    function currentRoundLocked() external view returns (bool) {
        Schedule memory schedule = _schedule;
        (, uint256 startBlock, uint256 length) = _currentRound(schedule);
        uint256 lockBlocks = length * schedule.roundLockAmount / PPM;
        return block.number - startBlock >= length - lockBlocks;
    }

    /// @inheritdoc IRoundsManager
    function blockHashForRound(uint256 round) external view returns (bytes32) {
        return _blockHashForRound[round];
    }

    /// @dev The current round, its first block and its length.
    function _currentRound(Schedule memory schedule)
        private
        view
        returns (uint256 round, uint256 startBlock, uint256 length)
    {
        uint256 baseRound;
        uint256 baseBlock;
        if (block.number >= schedule.updateStartBlock) {
            (baseRound, baseBlock, length) = (schedule.updateRound, schedule.updateStartBlock, schedule.roundLength);
        } else {
            PrevSchedule memory prev = _prev;
            (baseRound, baseBlock, length) = (prev.updateRound, prev.updateStartBlock, prev.roundLength);
        }
        uint256 elapsed = (block.number - baseBlock) / length;
        round = baseRound + elapsed;
        startBlock = baseBlock + elapsed * length;
    }
}
