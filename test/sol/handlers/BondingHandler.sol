// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Vm} from "../utils/Vm.sol";
import {ILivepeerToken} from "../../../contracts/interfaces/ILivepeerToken.sol";
import {IRoundsManager} from "../../../contracts/interfaces/IRoundsManager.sol";
import {IMinter} from "../../../contracts/interfaces/IMinter.sol";
import {IBondingManager} from "../../../contracts/interfaces/IBondingManager.sol";

/// @notice Drives the BondingManager for invariant and sequence-fuzz tests: 3 orchestrators and 8 delegators bond,
/// unbond, rebond, move, withdraw, claim and withdraw fees; orchestrators call reward and change cuts; rounds pass;
/// the handler (wired as TicketBroker and verifier by the test) credits fees and slashes.
/// @dev Every action snapshots all actors' pending stake and fees before and after and checks that nobody's
/// changed except by its own action, a reward of its delegate, a fee credit to its delegate or a slash of
/// itself; the first violation is kept in `violation` for the invariant to report. Ghost totals record what
/// went in and out so the invariants can check conservation.
contract BondingHandler {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    uint256 internal constant PPM = 1_000_000;
    uint256 internal constant MAX_AMOUNT = 5_000 ether;
    uint256 internal constant ORCHESTRATORS = 3;
    uint256 internal constant DELEGATORS = 8;

    ILivepeerToken public immutable token;
    IRoundsManager public immutable rounds;
    IMinter public immutable minter;
    IBondingManager public immutable bm;

    address[] public actors; // orchestrators first
    mapping(address => uint256[]) internal _lockIds;

    // ---------------------------------------------------------------- ghost totals
    uint256 public ghostBondedIn; // LPT sent in by bond
    uint256 public ghostWithdrawn; // LPT paid out by withdrawStake
    uint256 public ghostMinted; // LPT minted by reward
    uint256 public ghostSlashed; // LPT taken by slash (burned + finder's fee)
    uint256 public ghostFeesCredited; // wei deposited with the Minter and credited
    uint256 public ghostFeesPaid; // wei paid by withdrawFees
    /// @dev Upper bound of rewards minted for stake nobody owns: the reward is computed on the stake at the round's
    /// start (spec), so the share of stake that left earlier in the round has no owner, and stays in the
    /// orchestrator's stake where it earns (unowned) again in later rounds.
    uint256 public ghostUnownedRewardBound;
    /// @dev Upper bound of delegators' fees credited for stake nobody owns (same rule: fees of round `r` are
    /// split by the stake at the start of `r`, including stake that left during `r` and unowned stake).
    uint256 public ghostUnownedFeeBound;
    uint256 public ghostFeeCredits;
    uint256 public ghostStakeCalls; // successful stake-changing calls (each may round down ≤ 2 wei per part)
    uint256 public ghostRewardCalls;
    uint256 public ghostRounds;
    string public violation;
    string internal _action; // the action being checked, for the violation message

    mapping(address => mapping(uint256 => uint256)) internal _removedIn; // stake that left `o` in a round
    mapping(address => mapping(uint256 => uint256)) internal _gapAtStart; // unowned stake of `o` at a round's start, + 1
    mapping(bytes32 => uint256) public calls;

    // Snapshot of every actor before an action.
    struct Expect {
        address caller;
        uint256 added;
        uint256 removed;
        address rewarded;
        address credited;
        address slashed;
    }

    Expect internal _expect;
    uint256[] internal _stakeBefore;
    uint256[] internal _feesBefore;
    address[] internal _delegateBefore;

    constructor(ILivepeerToken token_, IRoundsManager rounds_, IMinter minter_, IBondingManager bm_) {
        token = token_;
        rounds = rounds_;
        minter = minter_;
        bm = bm_;
        for (uint256 i = 0; i < ORCHESTRATORS + DELEGATORS; i++) {
            actors.push(address(uint160(uint256(keccak256(abi.encode("bonding-handler-actor", i))))));
        }
    }

    /// @notice Funds and approves every actor; self-bonds and registers the orchestrators. The test has sent this
    /// handler the LPT to hand out.
    function init(uint256 fundsPerActor) external {
        for (uint256 i = 0; i < actors.length; i++) {
            address a = actors[i];
            require(token.transfer(a, fundsPerActor), "handler: fund");
            vm.prank(a);
            token.approve(address(bm), type(uint256).max);
            vm.label(a, i < ORCHESTRATORS ? "handlerOrchestrator" : "handlerDelegator");
        }
        for (uint256 i = 0; i < ORCHESTRATORS; i++) {
            address o = actors[i];
            uint256 stake = (i + 1) * 1_000 ether;
            vm.prank(o);
            bm.bond(stake, o);
            ghostBondedIn += stake;
            vm.prank(o);
            bm.registerOrchestrator(100_000 * (i + 1), 500_000);
        }
    }

    // =========================================================================================================
    // Views for the invariants
    // =========================================================================================================

    function actorCount() external view returns (uint256) {
        return actors.length;
    }

    function orchestratorAt(uint256 i) public view returns (address) {
        return actors[i % ORCHESTRATORS];
    }

    function lockIds(address a) external view returns (uint256[] memory) {
        return _lockIds[a];
    }

    /// @notice The value of every unbonding lock still held by the actors.
    function totalLocked() public view returns (uint256 total) {
        for (uint256 i = 0; i < actors.length; i++) {
            uint256[] storage ids = _lockIds[actors[i]];
            for (uint256 k = 0; k < ids.length; k++) {
                (uint256 amount,) = bm.getUnbondingLock(actors[i], ids[k]);
                total += amount;
            }
        }
    }

    function totalPendingStake() public view returns (uint256 total) {
        for (uint256 i = 0; i < actors.length; i++) {
            total += bm.pendingStake(actors[i]);
        }
    }

    function totalPendingFees() public view returns (uint256 total) {
        for (uint256 i = 0; i < actors.length; i++) {
            total += bm.pendingFees(actors[i]);
        }
    }

    // =========================================================================================================
    // Actions
    // =========================================================================================================

    function bond(uint256 actorSeed, uint256 orchSeed, uint256 amount) external {
        address a = _actor(actorSeed);
        address to = a;
        if (!_isOrchestrator(a)) {
            address current = bm.getDelegator(a).delegate;
            to = current != address(0) ? current : orchestratorAt(orchSeed);
        }
        amount = _bound(amount, 1, MAX_AMOUNT);
        if (token.balanceOf(a) < amount) return;
        _before();
        _action = "bond";
        vm.prank(a);
        try bm.bond(amount, to) {
            calls["bond"]++;
            ghostBondedIn += amount;
            ghostStakeCalls++;
            _after(a, amount, 0, address(0), address(0), address(0));
        } catch {
            calls["bond reverted"]++;
        }
    }

    function moveDelegation(uint256 actorSeed, uint256 orchSeed, uint256 amount) external {
        address a = _actor(actorSeed);
        if (_isOrchestrator(a)) return;
        address from = bm.getDelegator(a).delegate;
        address to = orchestratorAt(orchSeed);
        if (from == address(0) || from == to) return;
        amount = _bound(amount, 0, 100 ether);
        if (token.balanceOf(a) < amount) amount = 0;
        uint256 moved = bm.pendingStake(a);
        _before();
        _action = "moveDelegation";
        vm.prank(a);
        try bm.bond(amount, to) {
            calls["move"]++;
            ghostBondedIn += amount;
            ghostStakeCalls++;
            _removedIn[from][rounds.currentRound()] += moved;
            _after(a, amount, 0, address(0), address(0), address(0));
        } catch {
            calls["move reverted"]++;
        }
    }

    function unbond(uint256 actorSeed, uint256 amount) external {
        address a = _actor(actorSeed);
        uint256 stake = bm.pendingStake(a);
        address from = bm.getDelegator(a).delegate;
        if (stake == 0 || from == address(0)) return;
        // Sometimes everything (an orchestrator resigns), usually a part.
        amount = amount % 8 == 0 ? stake : _bound(amount, 1, stake);
        uint256 lockId = bm.getDelegator(a).nextUnbondingLockId;
        _before();
        _action = "unbond";
        vm.prank(a);
        try bm.unbond(amount) {
            calls["unbond"]++;
            ghostStakeCalls++;
            _lockIds[a].push(lockId);
            _removedIn[from][rounds.currentRound()] += amount;
            _after(a, 0, amount, address(0), address(0), address(0));
        } catch {
            calls["unbond reverted"]++;
        }
    }

    function rebond(uint256 actorSeed, uint256 lockSeed) external {
        address a = _actor(actorSeed);
        (bool found, uint256 index, uint256 lockId) = _pickLock(a, lockSeed);
        if (!found) return;
        (uint256 value,) = bm.getUnbondingLock(a, lockId);
        _before();
        _action = "rebond";
        vm.prank(a);
        try bm.rebond(lockId) {
            calls["rebond"]++;
            ghostStakeCalls++;
            _dropLock(a, index);
            _after(a, value, 0, address(0), address(0), address(0));
        } catch {
            calls["rebond reverted"]++;
        }
    }

    function rebondFromUnbonded(uint256 actorSeed, uint256 orchSeed, uint256 lockSeed) external {
        address a = _actor(actorSeed);
        (bool found, uint256 index, uint256 lockId) = _pickLock(a, lockSeed);
        if (!found) return;
        address to = _isOrchestrator(a) ? a : orchestratorAt(orchSeed);
        (uint256 value,) = bm.getUnbondingLock(a, lockId);
        _before();
        _action = "rebondFromUnbonded";
        vm.prank(a);
        try bm.rebondFromUnbonded(to, lockId) {
            calls["rebondFromUnbonded"]++;
            ghostStakeCalls++;
            _dropLock(a, index);
            _after(a, value, 0, address(0), address(0), address(0));
        } catch {
            calls["rebondFromUnbonded reverted"]++;
        }
    }

    function withdrawStake(uint256 actorSeed, uint256 lockSeed) external {
        address a = _actor(actorSeed);
        (bool found, uint256 index, uint256 lockId) = _pickLock(a, lockSeed);
        if (!found) return;
        (uint256 value,) = bm.getUnbondingLock(a, lockId);
        uint256 balance = token.balanceOf(a);
        _before();
        _action = "withdrawStake";
        vm.prank(a);
        try bm.withdrawStake(lockId) {
            calls["withdrawStake"]++;
            _dropLock(a, index);
            uint256 paid = token.balanceOf(a) - balance;
            if (paid != value) _fail("withdrawStake paid a different amount than the lock's value");
            ghostWithdrawn += paid;
            _after(a, 0, 0, address(0), address(0), address(0));
        } catch {
            calls["withdrawStake reverted"]++;
        }
    }

    function claimEarnings(uint256 actorSeed) external {
        address a = _actor(actorSeed);
        _before();
        _action = "claimEarnings";
        vm.prank(a);
        try bm.claimEarnings() {
            calls["claimEarnings"]++;
            ghostStakeCalls++;
            _after(a, 0, 0, address(0), address(0), address(0));
        } catch {
            calls["claimEarnings reverted"]++;
        }
    }

    function withdrawFees(uint256 actorSeed, uint256 amount) external {
        address a = _actor(actorSeed);
        uint256 owed = bm.pendingFees(a);
        if (owed == 0) return;
        amount = _bound(amount, 0, owed);
        uint256 balance = a.balance;
        _before();
        _action = "withdrawFees";
        vm.prank(a);
        try bm.withdrawFees(payable(a), amount) {
            calls["withdrawFees"]++;
            ghostStakeCalls++;
            uint256 paid = a.balance - balance;
            if (paid != amount) _fail("withdrawFees paid a different amount than asked");
            ghostFeesPaid += paid;
            _afterFees(a, amount);
        } catch {
            calls["withdrawFees reverted"]++;
        }
    }

    function reward(uint256 orchSeed) external {
        address o = orchestratorAt(orchSeed);
        uint256 c = rounds.currentRound();
        (uint256 poolStake,,) = bm.getEarningsPool(o, c);
        if (poolStake == 0) poolStake = bm.orchestratorTotalStake(o);
        // Stake in the round's snapshot that no delegator owns: stake that left this round, plus the gap between
        // the orchestrator's stake and its delegators' (earlier unowned rewards, which earn again).
        uint256 unowned = _removedIn[o][c] + _unownedStake(o);
        uint256 supply = token.totalSupply();
        _before();
        _action = "reward";
        vm.prank(o);
        try bm.reward() {
            calls["reward"]++;
            ghostRewardCalls++;
            uint256 minted = token.totalSupply() - supply;
            ghostMinted += minted;
            if (minted != 0 && unowned != 0) {
                if (unowned > poolStake) unowned = poolStake;
                ghostUnownedRewardBound += minted * unowned / poolStake + 1;
            }
            _after(o, 0, 0, o, address(0), address(0));
        } catch {
            calls["reward reverted"]++;
        }
    }

    function creditFees(uint256 orchSeed, uint256 fees, uint256 back) external {
        address o = orchestratorAt(orchSeed);
        uint256 c = rounds.currentRound();
        back = back % (bm.maxFeeBackfillRounds() + 1);
        if (back >= c) back = c - 1;
        fees = _bound(fees, 1, 10 ether);
        uint256 r = c - back;
        vm.deal(address(this), address(this).balance + fees);
        uint256 gap = _gapAtStart[o][r];
        gap = gap != 0 ? gap - 1 : _unownedStake(o);
        _before();
        _action = "creditFees";
        try bm.updateOrchestratorWithFees(o, fees, r) {
            calls["creditFees"]++;
            minter.depositETH{value: fees}();
            ghostFeesCredited += fees;
            ghostFeeCredits++;
            (uint256 poolStake,,) = bm.getEarningsPool(o, r);
            uint256 unowned = gap + _removedIn[o][r];
            if (poolStake != 0 && unowned != 0) {
                if (unowned > poolStake) unowned = poolStake;
                ghostUnownedFeeBound += fees * unowned / poolStake + 1;
            }
            _after(address(0), 0, 0, address(0), o, address(0));
        } catch {
            calls["creditFees reverted"]++;
        }
    }

    function slash(uint256 orchSeed, uint256 fraction, uint256 finderSeed) external {
        // A slash takes the orchestrator out of the active set at once: keep them rare so rewards keep flowing.
        if (finderSeed % 4 != 0) return;
        address o = orchestratorAt(orchSeed);
        // Mostly moderate slashes; now and then a full one.
        fraction = fraction % 16 == 0 ? PPM : _bound(fraction, 0, 300_000);
        address finder = finderSeed % 8 == 0 ? address(0) : address(uint160(0xf1d3));
        uint256 balance = token.balanceOf(address(bm));
        uint256 selfStake = bm.getDelegator(o).delegate == o ? bm.pendingStake(o) : 0;
        _before();
        _action = "slash";
        try bm.slash(o, fraction, finder) {
            calls["slash"]++;
            ghostStakeCalls++;
            ghostSlashed += balance - token.balanceOf(address(bm));
            _removedIn[o][rounds.currentRound()] += selfStake * fraction / PPM;
            _after(address(0), 0, 0, address(0), address(0), o);
        } catch {
            calls["slash reverted"]++;
        }
    }

    function setCuts(uint256 orchSeed, uint256 rewardCut, uint256 feeShare) external {
        address o = orchestratorAt(orchSeed);
        rewardCut = _bound(rewardCut, 0, PPM);
        feeShare = _bound(feeShare, 0, PPM);
        _before();
        _action = "setCuts";
        vm.prank(o);
        try bm.registerOrchestrator(rewardCut, feeShare) {
            calls["registerOrchestrator"]++;
            ghostStakeCalls++;
            _after(o, 0, 0, address(0), address(0), address(0));
        } catch {
            calls["registerOrchestrator reverted"]++;
        }
    }

    /// @notice Moves to the next round and initialises it.
    function nextRound() external {
        _before();
        _action = "nextRound";
        vm.roll(rounds.nextRoundStartBlock());
        rounds.initializeRound();
        calls["nextRound"]++;
        ghostRounds++;
        uint256 c = rounds.currentRound();
        for (uint256 i = 0; i < ORCHESTRATORS; i++) {
            _gapAtStart[actors[i]][c] = _unownedStake(actors[i]) + 1;
        }
        _after(address(0), 0, 0, address(0), address(0), address(0));
    }

    /// @notice Moves within the current round (possibly into its lock window), never past its end.
    function advanceBlocks(uint256 blocks) external {
        uint256 end = rounds.nextRoundStartBlock();
        uint256 target = block.number + _bound(blocks, 1, 100);
        if (target >= end) target = end - 1;
        if (target > block.number) vm.roll(target);
        calls["advanceBlocks"]++;
    }

    receive() external payable {}

    // =========================================================================================================
    // Per-action checks
    // =========================================================================================================

    function _before() internal {
        _action = "";
        delete _stakeBefore;
        delete _feesBefore;
        delete _delegateBefore;
        for (uint256 i = 0; i < actors.length; i++) {
            _stakeBefore.push(bm.pendingStake(actors[i]));
            _feesBefore.push(bm.pendingFees(actors[i]));
            _delegateBefore.push(bm.getDelegator(actors[i]).delegate);
        }
    }

    /// @param caller The acting account (its stake moves by exactly `+added - removed`), or zero.
    /// @param rewarded An orchestrator that called reward (its delegators' stake may grow), or zero.
    /// @param credited An orchestrator credited with fees (its delegators' fees may grow), or zero.
    /// @param slashed A slashed orchestrator (its own stake may shrink), or zero.
    function _after(address caller, uint256 added, uint256 removed, address rewarded, address credited, address slashed)
        internal
    {
        _expect = Expect(caller, added, removed, rewarded, credited, slashed);
        for (uint256 i = 0; i < actors.length; i++) {
            _checkStake(i);
            _checkFees(i);
        }
    }

    function _checkStake(uint256 i) internal {
        Expect memory e = _expect;
        address a = actors[i];
        uint256 stake = bm.pendingStake(a);
        uint256 stake0 = _stakeBefore[i];
        address delegate = _delegateBefore[i];
        if (a != e.caller && a != e.slashed && bm.getDelegator(a).delegate != delegate) {
            _fail("an account's delegate changed without its own action");
        }
        if (a == e.slashed) {
            if (stake > stake0) _fail("a slash raised the slashed account's stake");
        } else if (delegate != address(0) && delegate == e.rewarded) {
            if (stake < stake0) _fail("a reward lowered a delegator's stake");
        } else if (a == e.caller) {
            // Exact, except that re-measuring a position may round it down by a wei per stake part (the spec
            // rounds everything down); never up.
            uint256 expected = stake0 + e.added - e.removed;
            if (stake > expected || expected - stake > 2) {
                _fail(
                    string.concat(
                        "own action moved own stake by a wrong amount: expected ",
                        vm.toString(expected),
                        ", got ",
                        vm.toString(stake)
                    )
                );
            }
        } else if (stake != stake0) {
            _fail(
                string.concat(
                    "an account's stake changed without its own action, a reward or a slash: ",
                    vm.toString(stake0),
                    " -> ",
                    vm.toString(stake)
                )
            );
        }
    }

    function _checkFees(uint256 i) internal {
        Expect memory e = _expect;
        address a = actors[i];
        uint256 fees = bm.pendingFees(a);
        uint256 fees0 = _feesBefore[i];
        address delegate = _delegateBefore[i];
        if (a == e.caller || a == e.slashed) {
            // A claim (own, or the slash's claim of the slashed account) may round fees down by a wei per stake
            // part, never up.
            if (fees > fees0 || fees0 - fees > 2) _fail("own action or slash changed own fees");
        } else if (e.credited != address(0)) {
            // Late fees of an earlier round also reach accounts that were delegated to the orchestrator then and
            // have left since (THREATS 9), so any account's fees may grow; none may shrink.
            if (fees < fees0) _fail("a fee credit lowered an account's fees");
        } else if (fees != fees0) {
            _fail("an account's fees changed without its own action or a fee credit");
        }
    }

    function _afterFees(address caller, uint256 withdrawn) internal {
        for (uint256 i = 0; i < actors.length; i++) {
            address a = actors[i];
            if (bm.pendingStake(a) != _stakeBefore[i]) _fail("withdrawFees changed a stake");
            uint256 fees = bm.pendingFees(a);
            if (a == caller) {
                uint256 expected = _feesBefore[i] - withdrawn;
                if (fees > expected || expected - fees > 2) _fail("withdrawFees left a wrong fee balance");
            } else if (fees != _feesBefore[i]) {
                _fail("withdrawFees changed another account's fees");
            }
        }
    }

    function _unownedStake(address o) internal view returns (uint256) {
        uint256 owned;
        for (uint256 i = 0; i < actors.length; i++) {
            if (bm.getDelegator(actors[i]).delegate == o) owned += bm.pendingStake(actors[i]);
        }
        uint256 total = bm.orchestratorTotalStake(o);
        return total > owned ? total - owned : 0;
    }

    function _fail(string memory what) internal {
        if (bytes(violation).length == 0) {
            violation = string.concat(what, " (action: ", _action, ", round ", vm.toString(rounds.currentRound()), ")");
        }
    }

    // =========================================================================================================
    // Helpers
    // =========================================================================================================

    function _actor(uint256 seed) internal view returns (address) {
        return actors[seed % actors.length];
    }

    function _isOrchestrator(address a) internal view returns (bool) {
        for (uint256 i = 0; i < ORCHESTRATORS; i++) {
            if (actors[i] == a) return true;
        }
        return false;
    }

    function _pickLock(address a, uint256 seed) internal view returns (bool, uint256, uint256) {
        uint256[] storage ids = _lockIds[a];
        if (ids.length == 0) return (false, 0, 0);
        uint256 index = seed % ids.length;
        return (true, index, ids[index]);
    }

    function _dropLock(address a, uint256 index) internal {
        uint256[] storage ids = _lockIds[a];
        ids[index] = ids[ids.length - 1];
        ids.pop();
    }

    function _bound(uint256 x, uint256 min, uint256 max) internal pure returns (uint256) {
        if (x >= min && x <= max) return x;
        return min + (x % (max - min + 1));
    }
}
