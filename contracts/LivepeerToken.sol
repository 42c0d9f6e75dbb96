// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ILivepeerToken} from "./interfaces/ILivepeerToken.sol";

/// @title LivepeerToken
/// @notice LPT: an 18-decimal ERC-20 minted only by the minter (the Minter contract once wired).
contract LivepeerToken is ILivepeerToken, ERC20, Ownable {
    /// @inheritdoc ILivepeerToken
    address public minter;

    constructor() ERC20("Livepeer Token", "LPT") Ownable(msg.sender) {}

    /// @inheritdoc ILivepeerToken
    function setMinter(address newMinter) external onlyOwner {
        if (newMinter == address(0)) revert ZeroAddress();
        minter = newMinter;
        emit MinterSet(newMinter);
    }

    /// @inheritdoc ILivepeerToken
    function mint(address to, uint256 amount) external {
        if (msg.sender != minter) revert NotMinter(msg.sender);
        _mint(to, amount);
    }

    /// @inheritdoc ILivepeerToken
    function burn(uint256 amount) external {
        _burn(msg.sender, amount);
    }
}
