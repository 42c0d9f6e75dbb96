// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IMinter} from "./interfaces/IMinter.sol";
import {ILivepeerToken} from "./interfaces/ILivepeerToken.sol";
import {IBondingManager} from "./interfaces/IBondingManager.sol";

/// @title Minter
/// @notice Per-round inflation toward a target bonding rate; custody of the ETH that pays fees.
contract Minter is IMinter, Ownable {
    uint256 private constant PPM = 1_000_000;
    uint256 private constant PPB = 1_000_000_000;

    /// @inheritdoc IMinter
    address public immutable token;
    /// @inheritdoc IMinter
    address public bondingManager;
    /// @inheritdoc IMinter
    address public roundsManager;
    /// @inheritdoc IMinter
    uint256 public inflation;
    /// @inheritdoc IMinter
    uint256 public inflationChange;
    /// @inheritdoc IMinter
    uint256 public targetBondingRate;
    /// @inheritdoc IMinter
    uint256 public currentMintableTokens;
    /// @inheritdoc IMinter
    uint256 public currentMintedTokens;

    constructor(address token_, uint256 inflation_, uint256 inflationChange_, uint256 targetBondingRate_)
        Ownable(msg.sender)
    {
        if (token_ == address(0)) revert ZeroAddress();
        if (targetBondingRate_ > PPM) revert InvalidTargetBondingRate(targetBondingRate_);
        token = token_;
        inflation = inflation_;
        inflationChange = inflationChange_;
        targetBondingRate = targetBondingRate_;
    }

    /// @inheritdoc IMinter
    function setCurrentRewardTokens() external {
        if (msg.sender != roundsManager) revert OnlyRoundsManager(msg.sender);
        uint256 totalSupply = ILivepeerToken(token).totalSupply();
        uint256 totalBonded = IBondingManager(bondingManager).getTotalBonded();
        // Compared cross-multiplied so no rounding of the bonding rate can flip the direction.
        uint256 bonded = totalBonded * PPM;
        uint256 target = targetBondingRate * totalSupply;
        uint256 newInflation = inflation;
        if (bonded < target) {
            newInflation += inflationChange;
        } else if (bonded > target) {
            newInflation = newInflation > inflationChange ? newInflation - inflationChange : 0;
        }
        uint256 mintable = totalSupply * newInflation / PPB;
        inflation = newInflation;
        currentMintableTokens = mintable;
        currentMintedTokens = 0;
        emit SetCurrentRewardTokens(mintable, newInflation);
    }

    /// @inheritdoc IMinter
    function createReward(uint256 fracNum, uint256 fracDenom) external returns (uint256 amount) {
        if (msg.sender != bondingManager) revert OnlyBondingManager(msg.sender);
        if (fracDenom == 0) return 0;
        uint256 mintable = currentMintableTokens;
        uint256 minted = currentMintedTokens;
        amount = mintable * fracNum / fracDenom;
        // Snapshots can disagree (stake joining mid-round), so cap at what the round still allows.
        uint256 left = mintable - minted;
        if (amount > left) amount = left;
        if (amount == 0) return 0;
        currentMintedTokens = minted + amount;
        ILivepeerToken(token).mint(msg.sender, amount);
    }

    /// @inheritdoc IMinter
    function depositETH() external payable {
        emit ETHDeposited(msg.sender, msg.value);
    }

    /// @inheritdoc IMinter
    function trustedWithdrawETH(address payable to, uint256 amount) external {
        if (msg.sender != bondingManager) revert OnlyBondingManager(msg.sender);
        if (amount > address(this).balance) revert InsufficientETH(amount, address(this).balance);
        emit ETHWithdrawn(to, amount);
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert EthTransferFailed(to, amount);
    }

    /// @inheritdoc IMinter
    function setInflationChange(uint256 newInflationChange) external onlyOwner {
        inflationChange = newInflationChange;
        emit InflationChangeSet(newInflationChange);
    }

    /// @inheritdoc IMinter
    function setTargetBondingRate(uint256 newTargetBondingRate) external onlyOwner {
        if (newTargetBondingRate > PPM) revert InvalidTargetBondingRate(newTargetBondingRate);
        targetBondingRate = newTargetBondingRate;
        emit TargetBondingRateSet(newTargetBondingRate);
    }

    /// @inheritdoc IMinter
    function setBondingManager(address newBondingManager) external onlyOwner {
        if (newBondingManager == address(0)) revert ZeroAddress();
        bondingManager = newBondingManager;
        emit BondingManagerSet(newBondingManager);
    }

    /// @inheritdoc IMinter
    function setRoundsManager(address newRoundsManager) external onlyOwner {
        if (newRoundsManager == address(0)) revert ZeroAddress();
        roundsManager = newRoundsManager;
        emit RoundsManagerSet(newRoundsManager);
    }
}
