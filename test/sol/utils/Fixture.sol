// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "./Test.sol";
import {ILivepeerToken} from "../../../contracts/interfaces/ILivepeerToken.sol";
import {IRoundsManager} from "../../../contracts/interfaces/IRoundsManager.sol";
import {IMinter} from "../../../contracts/interfaces/IMinter.sol";
import {IBondingManager} from "../../../contracts/interfaces/IBondingManager.sol";
import {IServiceRegistry} from "../../../contracts/interfaces/IServiceRegistry.sol";

/// @notice Deploys and wires the staking contracts as `src/chain/deploy.ts` does (the test contract is the owner),
/// funds accounts from an initial supply, and offers round / bonding helpers.
/// @dev Contracts are deployed from their forge artifacts (`vm.getCode`), so tests compile against the interfaces
/// alone and the fixture does not embed every contract's creation code.
abstract contract Fixture is Test {
    uint256 internal constant PPM = 1_000_000;
    uint256 internal constant PRECISE = 1e27;

    uint256 internal constant ROUND_LENGTH = 100;
    /// @dev 10 % of a round: the last 10 blocks with ROUND_LENGTH = 100.
    uint256 internal constant ROUND_LOCK_AMOUNT = 100_000;
    /// @dev 0.1 % of the supply per round: 10_000 LPT with the initial supply.
    uint256 internal constant INFLATION = 1_000_000;
    /// @dev Zero keeps each round's mintable amount predictable; Minter tests vary it.
    uint256 internal constant INFLATION_CHANGE = 0;
    uint256 internal constant TARGET_BONDING_RATE = 500_000;
    uint256 internal constant UNBONDING_PERIOD = 7;
    uint256 internal constant INITIAL_SUPPLY = 10_000_000 ether;

    /// @dev OpenZeppelin Ownable's error, for owner-only reverts.
    error OwnableUnauthorizedAccount(address account);

    ILivepeerToken internal token;
    IRoundsManager internal rounds;
    IMinter internal minter;
    IBondingManager internal bm;
    IServiceRegistry internal registry;

    /// @dev Wired as the BondingManager's TicketBroker (tests prank as it to credit fees).
    address internal broker;
    /// @dev Registered as a BondingManager verifier (tests prank as it to slash).
    address internal verifier;

    function setUp() public virtual {
        broker = makeAddr("ticketBroker");
        verifier = makeAddr("verifier");
        _deployAll();
        rounds.initializeRound();
    }

    function _deployAll() internal {
        token = ILivepeerToken(_deploy("LivepeerToken", ""));
        rounds = IRoundsManager(_deploy("RoundsManager", abi.encode(ROUND_LENGTH)));
        minter =
            IMinter(_deploy("Minter", abi.encode(address(token), INFLATION, INFLATION_CHANGE, TARGET_BONDING_RATE)));
        bm = IBondingManager(
            _deploy("BondingManager", abi.encode(address(token), address(minter), address(rounds), UNBONDING_PERIOD))
        );
        registry = IServiceRegistry(_deploy("ServiceRegistry", abi.encode(address(bm))));
        vm.label(address(token), "LivepeerToken");
        vm.label(address(rounds), "RoundsManager");
        vm.label(address(minter), "Minter");
        vm.label(address(bm), "BondingManager");
        vm.label(address(registry), "ServiceRegistry");

        // The deployer mints the initial supply before handing the minter role to the Minter.
        token.setMinter(address(this));
        token.mint(address(this), INITIAL_SUPPLY);
        token.setMinter(address(minter));
        minter.setBondingManager(address(bm));
        minter.setRoundsManager(address(rounds));
        rounds.setBondingManager(address(bm));
        rounds.setMinter(address(minter));
        rounds.setRoundLockAmount(ROUND_LOCK_AMOUNT);
        bm.setTicketBroker(broker);
        bm.setVerifier(verifier, true);
    }

    /// @notice Deploys artifact `<name>.sol:<name>` with ABI-encoded constructor `args`.
    function _deploy(string memory name, bytes memory args) internal returns (address deployed) {
        bytes memory code = abi.encodePacked(vm.getCode(string.concat(name, ".sol:", name)), args);
        assembly {
            deployed := create(0, add(code, 0x20), mload(code))
        }
        require(deployed != address(0), string.concat("Fixture: deploying ", name, " failed"));
    }

    // ---------------------------------------------------------------- rounds

    /// @notice Rolls to the first block of the next round and initialises it.
    function _nextRound() internal {
        vm.roll(rounds.nextRoundStartBlock());
        rounds.initializeRound();
    }

    function _advanceRounds(uint256 n) internal {
        for (uint256 i = 0; i < n; i++) {
            _nextRound();
        }
    }

    /// @notice Rolls to the last block of the current round (inside the lock window when it is non-empty).
    function _rollToLockWindow() internal {
        vm.roll(rounds.nextRoundStartBlock() - 1);
    }

    function _round() internal view returns (uint256) {
        return rounds.currentRound();
    }

    // ---------------------------------------------------------------- accounts and bonding

    /// @notice Transfers `amount` LPT from the initial supply to `who` and approves the BondingManager for all.
    function _fund(address who, uint256 amount) internal {
        require(token.transfer(who, amount), "Fixture: transfer failed");
        vm.prank(who);
        token.approve(address(bm), type(uint256).max);
    }

    /// @notice Funds `delegator` with `amount` and bonds it to `to`.
    function _bond(address delegator, uint256 amount, address to) internal {
        _fund(delegator, amount);
        vm.prank(delegator);
        bm.bond(amount, to);
    }

    /// @notice Self-bonds `stake` and registers `o` with the given cuts (active from the next round).
    function _registerOrchestrator(address o, uint256 stake, uint256 rewardCut, uint256 feeShare) internal {
        _bond(o, stake, o);
        vm.prank(o);
        bm.registerOrchestrator(rewardCut, feeShare);
    }

    /// @notice Unbonds `amount` for `delegator`, returning the new lock id.
    function _unbond(address delegator, uint256 amount) internal returns (uint256 lockId) {
        lockId = bm.getDelegator(delegator).nextUnbondingLockId;
        vm.prank(delegator);
        bm.unbond(amount);
    }

    function _reward(address o) internal {
        vm.prank(o);
        bm.reward();
    }

    /// @notice The broker deposits `fees` wei with the Minter and credits them to `o` for tickets of `round`.
    function _creditFees(address o, uint256 fees, uint256 round) internal {
        vm.deal(broker, broker.balance + fees);
        vm.startPrank(broker);
        minter.depositETH{value: fees}();
        bm.updateOrchestratorWithFees(o, fees, round);
        vm.stopPrank();
    }

    function _slash(address o, uint256 fraction, address finder) internal {
        vm.prank(verifier);
        bm.slash(o, fraction, finder);
    }

    // ---------------------------------------------------------------- active set

    /// @notice The active set list from head to tail.
    function _pool() internal view returns (address[] memory members) {
        uint256 size = bm.getOrchestratorPoolSize();
        members = new address[](size);
        address cur = bm.getFirstOrchestratorInPool();
        for (uint256 i = 0; i < size; i++) {
            require(cur != address(0), "Fixture: pool list shorter than its size");
            members[i] = cur;
            cur = bm.getNextOrchestratorInPool(cur);
        }
        require(cur == address(0), "Fixture: pool list longer than its size");
    }

    /// @notice Walks the active set and checks it is sorted by descending stake, linked consistently both ways,
    /// of `expectedSize`, and that its stakes add up to `nextRoundTotalActiveStake`.
    function _assertPoolSorted(uint256 expectedSize) internal view {
        address[] memory members = _pool();
        assertEq(members.length, expectedSize, "pool size");
        uint256 total;
        address prev;
        for (uint256 i = 0; i < members.length; i++) {
            uint256 stake = bm.orchestratorTotalStake(members[i]);
            total += stake;
            assertEq(bm.getPrevOrchestratorInPool(members[i]), prev, "pool prev link");
            if (i > 0) assertLe(stake, bm.orchestratorTotalStake(members[i - 1]), "pool not descending");
            prev = members[i];
        }
        assertEq(bm.getLastOrchestratorInPool(), prev, "pool tail");
        assertEq(total, bm.nextRoundTotalActiveStake(), "pool total != nextRoundTotalActiveStake");
    }
}
