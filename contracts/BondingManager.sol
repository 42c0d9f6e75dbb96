// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IBondingManager} from "./interfaces/IBondingManager.sol";
import {ILivepeerToken} from "./interfaces/ILivepeerToken.sol";
import {IMinter} from "./interfaces/IMinter.sol";
import {IRoundsManager} from "./interfaces/IRoundsManager.sol";
import {SortedList} from "./libraries/SortedList.sol";

/// @title BondingManager
/// @notice Staking, delegation, the active set, rewards, fees and slashing. See `IBondingManager` for the rules.
/// @dev Earnings pools. `_pools[o][r]` holds the orchestrator's stake at the start of round `r` and the cumulative
/// factors as of the end of round `r`. A pool is written ("materialised") at the first event in its round that
/// touches the orchestrator (a stake change, a reward, fees), copying the factors of the latest earlier pool; a
/// round with no pool has the factors of the latest earlier pool. `poolRounds` keeps the orchestrator's 8 most
/// recent pool rounds so that "latest pool at or before round r" is O(1) for every r a call can ask about.
///
/// A delegator's stake is split in two parts, each measured at a pool: `bondedAmount` at the end of
/// `lastClaimRound` (resolved through `factorRound` when that round has no pool), and `pendingAmount` — stake
/// added in round `lastClaimRound + 1`, which earns only from the round after — at the end of
/// `lastClaimRound + 1` (that pool always exists: adding stake touches it). A claim in round `c` settles both
/// parts through the end of `c` when the delegate has called reward in `c` (its reward factor for `c` is then
/// final; stake added afterwards joins `bondedAmount` directly), else through the end of `c - 1`, so round `c`'s
/// reward, which may come later in the round, is never lost.
///
/// Fees credited late for an earlier round `r` raise the fee factor of every pool from `r` to the current round;
/// those pools are materialised first, so a delegator's reference pool always reflects them, and a delegator
/// who already claimed through `r` does not receive them (its share stays in the Minter) — no one is ever paid
/// twice.
contract BondingManager is IBondingManager, Ownable {
    using SortedList for SortedList.Data;
    using SafeCast for uint256;

    uint256 private constant PPM = 1_000_000;
    uint256 private constant PRECISE = 1e27;
    uint256 private constant MAX_FINDER_FEE = 500_000;
    uint64 private constant NEVER = type(uint64).max;
    /// @dev Pool rounds remembered per orchestrator; a fee backfill of `w` rounds needs `w + 2` of them.
    uint256 private constant POOL_ROUND_SLOTS = 8;

    /// @inheritdoc IBondingManager
    uint256 public constant MAX_FEE_BACKFILL_ROUNDS = POOL_ROUND_SLOTS - 2;

    struct Delegator {
        address delegate;
        // Fees are settled through the end of this round (plus `feeOffset` of the next one).
        uint64 lastClaimRound;
        uint24 nextUnbondingLockId;
        // `bondedAmount` is measured at the end of `lastClaimRound + 1` instead of `lastClaimRound`.
        bool rewardLead;
        uint128 bondedAmount;
        uint128 fees;
        uint128 pendingAmount;
        uint64 factorRound;
        uint64 startRound;
        // Fee factor of round `lastClaimRound + 1` already paid on `bondedAmount`.
        uint256 feeOffset;
    }

    struct Orchestrator {
        uint128 totalStake;
        uint64 lastRewardRound;
        uint64 activationRound;
        uint64 deactivationRound;
        // Cuts in force from `cutsRound`, and the latest ones, in force from `pendingCutsRound`.
        uint64 cutsRound;
        uint64 pendingCutsRound;
        uint32 rewardCut;
        uint32 feeShare;
        uint32 pendingRewardCut;
        uint32 pendingFeeShare;
        bool registered;
        bool everRegistered;
        // Up to 8 uint32 round numbers of its latest pools, the most recent in the lowest bits.
        uint256 poolRounds;
    }

    struct EarningsPool {
        uint128 totalStake;
        uint128 cumulativeRewardFactor;
        uint256 cumulativeFeeFactor;
    }

    /// @dev Cuts that applied from `fromRound` until the round they are stored under.
    struct PastCuts {
        uint32 rewardCut;
        uint32 feeShare;
        uint64 fromRound;
    }

    /// @dev Unbonding locks hold shares; an account's shares are worth `PRECISE - scaleLoss` per PRECISE, so a
    /// slash shrinks all of an account's locks at once. A full slash starts a new epoch instead (older locks
    /// are worth nothing).
    struct LockBook {
        uint128 totalShares;
        uint96 scaleLoss;
        uint32 epoch;
    }

    struct Lock {
        uint128 shares;
        uint64 withdrawRound;
        uint32 epoch;
    }

    struct RoundCache {
        uint64 round;
        uint64 endBlock;
        uint128 totalActiveStake;
    }

    struct Totals {
        uint128 nextRoundTotalActiveStake;
        uint128 totalBonded;
    }

    struct BondHints {
        address oldPrev;
        address oldNext;
        address currPrev;
        address currNext;
    }

    struct Params {
        uint128 minimumStake;
        uint64 unbondingPeriod;
        uint32 maxActiveOrchestrators;
        uint32 finderFee;
    }

    /// @inheritdoc IBondingManager
    address public immutable token;
    /// @inheritdoc IBondingManager
    address public minter;
    /// @inheritdoc IBondingManager
    address public roundsManager;
    /// @inheritdoc IBondingManager
    address public ticketBroker;
    /// @inheritdoc IBondingManager
    mapping(address account => bool) public isVerifier;
    /// @inheritdoc IBondingManager
    uint256 public maxFeeBackfillRounds = 2;

    RoundCache private _roundCache;
    Totals private _totals;
    Params private _params;
    SortedList.Data private _pool;

    mapping(address => Delegator) private _delegators;
    mapping(address => Orchestrator) private _orchestrators;
    mapping(address => mapping(uint256 round => EarningsPool)) private _pools;
    mapping(address => mapping(uint256 untilRound => PastCuts)) private _pastCuts;
    mapping(address => LockBook) private _lockBooks;
    mapping(address => mapping(uint256 lockId => Lock)) private _locks;

    /// @param token_ The LPT contract.
    /// @param minter_ The Minter (may be zero and wired later with `setMinter`).
    /// @param roundsManager_ The RoundsManager (may be zero and wired later with `setRoundsManager`).
    /// @param unbondingPeriod_ Rounds a lock waits before it can be withdrawn (> 0).
    constructor(address token_, address minter_, address roundsManager_, uint256 unbondingPeriod_)
        Ownable(msg.sender)
    {
        if (token_ == address(0)) revert ZeroAddress();
        if (unbondingPeriod_ == 0) revert InvalidUnbondingPeriod(0);
        token = token_;
        minter = minter_;
        roundsManager = roundsManager_;
        _params = Params({
            minimumStake: 0,
            unbondingPeriod: unbondingPeriod_.toUint64(),
            maxActiveOrchestrators: 1000,
            finderFee: 100_000
        });
    }

    // =============================================================================================================
    // Orchestrators
    // =============================================================================================================

    /// @inheritdoc IBondingManager
    function registerOrchestrator(uint256 rewardCut, uint256 feeShare) external {
        _register(rewardCut, feeShare, address(0), address(0));
    }

    /// @inheritdoc IBondingManager
    function registerOrchestratorWithHint(uint256 rewardCut, uint256 feeShare, address prev, address next) external {
        _register(rewardCut, feeShare, prev, next);
    }

    function _register(uint256 rewardCut, uint256 feeShare, address prev, address next) private {
        uint256 c = _currentRound();
        if (rewardCut > PPM) revert InvalidCut(rewardCut);
        if (feeShare > PPM) revert InvalidCut(feeShare);
        if (IRoundsManager(roundsManager).currentRoundLocked()) revert CutsLocked(c);
        address o = msg.sender;
        Delegator storage d = _delegators[o];
        if (d.delegate != o) revert NotSelfBonded(o);
        (uint256 bonded, uint256 pending) = _claim(o, d, o, c);
        if (bonded + pending == 0) revert NotSelfBonded(o);

        Orchestrator storage os = _orchestrators[o];
        uint256 effectiveRound;
        if (!os.everRegistered) {
            // Nobody but itself can be delegated to it yet, so the cuts can apply at once.
            os.everRegistered = true;
            (os.rewardCut, os.feeShare) = (uint32(rewardCut), uint32(feeShare));
            (os.pendingRewardCut, os.pendingFeeShare) = (uint32(rewardCut), uint32(feeShare));
            os.cutsRound = uint64(c);
            os.pendingCutsRound = uint64(c);
            effectiveRound = c;
        } else {
            effectiveRound = c + 1;
            uint256 pendingRound = os.pendingCutsRound;
            if (pendingRound <= c) {
                // The pending cuts are in force: they become the current ones, the current ones history.
                if (pendingRound != os.cutsRound) {
                    _pastCuts[o][pendingRound] = PastCuts(os.rewardCut, os.feeShare, os.cutsRound);
                }
                (os.rewardCut, os.feeShare) = (os.pendingRewardCut, os.pendingFeeShare);
                os.cutsRound = uint64(pendingRound);
            }
            (os.pendingRewardCut, os.pendingFeeShare) = (uint32(rewardCut), uint32(feeShare));
            os.pendingCutsRound = uint64(effectiveRound);
        }
        emit OrchestratorUpdate(o, rewardCut, feeShare, effectiveRound);

        if (!os.registered) {
            os.registered = true;
            uint256 total = os.totalStake;
            _updatePool(o, os, total, total, c, prev, next);
        }
    }

    // =============================================================================================================
    // Bonding
    // =============================================================================================================

    /// @inheritdoc IBondingManager
    function bond(uint256 amount, address to) external {
        _bond(amount, to, BondHints(address(0), address(0), address(0), address(0)));
    }

    /// @inheritdoc IBondingManager
    function bondWithHint(
        uint256 amount,
        address to,
        address oldDelegateNewPosPrev,
        address oldDelegateNewPosNext,
        address currDelegateNewPosPrev,
        address currDelegateNewPosNext
    ) external {
        _bond(
            amount,
            to,
            BondHints(oldDelegateNewPosPrev, oldDelegateNewPosNext, currDelegateNewPosPrev, currDelegateNewPosNext)
        );
    }

    function _bond(uint256 amount, address to, BondHints memory hints) private {
        uint256 c = _currentRound();
        Delegator storage d = _delegators[msg.sender];
        address current = d.delegate;
        Orchestrator storage toO = _orchestrators[to];
        if (to != msg.sender && !toO.registered) revert NotRegisteredOrchestrator(to);
        (uint256 stake, uint256 added) = _leaveForBond(d, current, to, amount, c, hints);
        d.startRound = uint64(c + 1);
        _increaseStake(to, toO, c, added, hints.currPrev, hints.currNext);
        if (amount != 0) {
            _totals.totalBonded += amount.toUint128();
            ILivepeerToken(token).transferFrom(msg.sender, address(this), amount);
        }
        emit Bond(to, current, msg.sender, amount, stake + amount);
    }

    /// @dev The caller's side of a bond: claims at the current delegate, moves the whole stake out of it when
    /// bonding elsewhere, and records `to` as the delegate. Returns the stake before the bond and the stake that
    /// arrives at `to`.
    function _leaveForBond(
        Delegator storage d,
        address current,
        address to,
        uint256 amount,
        uint256 c,
        BondHints memory hints
    ) private returns (uint256 stake, uint256 added) {
        if (current == address(0)) {
            if (amount == 0) revert ZeroAmount();
            d.delegate = to;
            d.lastClaimRound = uint64(c - 1);
            d.pendingAmount = amount.toUint128();
            return (0, amount);
        }
        (uint256 bonded, uint256 pending) = _claim(msg.sender, d, current, c);
        stake = bonded + pending;
        if (current == to) {
            if (amount == 0) revert ZeroAmount();
            d.pendingAmount = (pending + amount).toUint128();
            return (stake, amount);
        }
        if (_orchestrators[msg.sender].registered) revert OrchestratorCannotMove(msg.sender);
        _decreaseStake(current, _orchestrators[current], c, stake, hints.oldPrev, hints.oldNext);
        // At the new delegate the whole stake is new: it earns there from the next round.
        added = stake + amount;
        d.delegate = to;
        d.bondedAmount = 0;
        d.rewardLead = false;
        d.pendingAmount = added.toUint128();
    }

    /// @inheritdoc IBondingManager
    function unbond(uint256 amount) external {
        _unbond(amount, address(0), address(0));
    }

    /// @inheritdoc IBondingManager
    function unbondWithHint(uint256 amount, address newPosPrev, address newPosNext) external {
        _unbond(amount, newPosPrev, newPosNext);
    }

    function _unbond(uint256 amount, address prev, address next) private {
        uint256 c = _currentRound();
        address delegator = msg.sender;
        Delegator storage d = _delegators[delegator];
        address o = d.delegate;
        if (o == address(0)) revert NotBonded(delegator);
        if (amount == 0) revert ZeroAmount();
        bool everything;
        {
            (uint256 bonded, uint256 pending) = _claim(delegator, d, o, c);
            uint256 stake = bonded + pending;
            if (amount > stake) revert InsufficientBond(amount, stake);
            _takeStake(d, bonded, pending, amount);
            everything = amount == stake;
        }
        Orchestrator storage os = _orchestrators[o];
        if (everything) {
            d.delegate = address(0);
            if (o == delegator && os.registered) _resign(o, os, c);
        }
        (uint256 lockId, uint256 withdrawRound) = _createLock(delegator, d, amount, c);
        _totals.totalBonded -= uint128(amount);
        _decreaseStake(o, os, c, amount, prev, next);
        emit Unbond(delegator, o, lockId, amount, withdrawRound);
    }

    /// @inheritdoc IBondingManager
    function rebond(uint256 unbondingLockId) external {
        _rebond(unbondingLockId, address(0), address(0));
    }

    /// @inheritdoc IBondingManager
    function rebondWithHint(uint256 unbondingLockId, address newPosPrev, address newPosNext) external {
        _rebond(unbondingLockId, newPosPrev, newPosNext);
    }

    function _rebond(uint256 lockId, address prev, address next) private {
        uint256 c = _currentRound();
        address delegator = msg.sender;
        Delegator storage d = _delegators[delegator];
        address o = d.delegate;
        if (o == address(0)) revert NotBonded(delegator);
        (, uint256 pending) = _claim(delegator, d, o, c);
        (uint256 amount,) = _consumeLock(delegator, lockId);
        d.pendingAmount = (pending + amount).toUint128();
        d.startRound = uint64(c + 1);
        _totals.totalBonded += uint128(amount);
        _increaseStake(o, _orchestrators[o], c, amount, prev, next);
        emit Rebond(delegator, o, lockId, amount);
    }

    /// @inheritdoc IBondingManager
    function rebondFromUnbonded(address to, uint256 unbondingLockId) external {
        _rebondFromUnbonded(to, unbondingLockId, address(0), address(0));
    }

    /// @inheritdoc IBondingManager
    function rebondFromUnbondedWithHint(address to, uint256 unbondingLockId, address newPosPrev, address newPosNext)
        external
    {
        _rebondFromUnbonded(to, unbondingLockId, newPosPrev, newPosNext);
    }

    function _rebondFromUnbonded(address to, uint256 lockId, address prev, address next) private {
        uint256 c = _currentRound();
        address delegator = msg.sender;
        Delegator storage d = _delegators[delegator];
        if (d.delegate != address(0)) revert AlreadyBonded(delegator, d.delegate);
        Orchestrator storage os = _orchestrators[to];
        if (to != delegator && !os.registered) revert NotRegisteredOrchestrator(to);
        (uint256 amount,) = _consumeLock(delegator, lockId);
        // Unbonded means no stake left, so there is nothing to claim: start afresh at `to`.
        d.delegate = to;
        d.lastClaimRound = uint64(c - 1);
        d.bondedAmount = 0;
        d.pendingAmount = amount.toUint128();
        d.startRound = uint64(c + 1);
        _totals.totalBonded += uint128(amount);
        _increaseStake(to, os, c, amount, prev, next);
        emit Rebond(delegator, to, lockId, amount);
    }

    /// @inheritdoc IBondingManager
    function withdrawStake(uint256 unbondingLockId) external {
        uint256 c = _currentRound();
        Lock storage lock = _locks[msg.sender][unbondingLockId];
        uint256 withdrawRound = lock.withdrawRound;
        if (withdrawRound == 0) revert InvalidUnbondingLock(unbondingLockId);
        if (withdrawRound > c) revert UnbondingLockNotWithdrawable(unbondingLockId, withdrawRound);
        (uint256 amount,) = _consumeLock(msg.sender, unbondingLockId);
        emit WithdrawStake(msg.sender, unbondingLockId, amount, withdrawRound);
        if (amount != 0) ILivepeerToken(token).transfer(msg.sender, amount);
    }

    /// @inheritdoc IBondingManager
    function withdrawFees(address payable recipient, uint256 amount) external {
        if (recipient == address(0)) revert ZeroAddress();
        uint256 c = _currentRound();
        Delegator storage d = _delegators[msg.sender];
        address o = d.delegate;
        if (o != address(0)) _claim(msg.sender, d, o, c);
        uint256 fees = d.fees;
        if (amount > fees) revert InsufficientFees(amount, fees);
        d.fees = uint128(fees - amount);
        emit WithdrawFees(msg.sender, recipient, amount);
        // Effects are done: a reentrant call through `recipient` sees the fees already debited (THREATS 15).
        IMinter(minter).trustedWithdrawETH(recipient, amount);
    }

    /// @inheritdoc IBondingManager
    function claimEarnings() external {
        uint256 c = _currentRound();
        Delegator storage d = _delegators[msg.sender];
        address o = d.delegate;
        if (o != address(0)) _claim(msg.sender, d, o, c);
    }

    // =============================================================================================================
    // Rewards, fees, slashing
    // =============================================================================================================

    /// @inheritdoc IBondingManager
    function reward() external {
        _reward(address(0), address(0));
    }

    /// @inheritdoc IBondingManager
    function rewardWithHint(address newPosPrev, address newPosNext) external {
        _reward(newPosPrev, newPosNext);
    }

    function _reward(address prev, address next) private {
        RoundCache memory rc = _loadRoundCache();
        uint256 c = rc.round;
        address o = msg.sender;
        Orchestrator storage os = _orchestrators[o];
        // A resigned orchestrator stays active until the round ends but has no self-bond left to take a cut.
        if (!os.registered || !_isActive(os, c)) revert NotActiveOrchestrator(o);
        if (os.lastRewardRound == c) revert RewardAlreadyCalled(c);

        uint256 amount = _mintReward(o, os, c, rc.totalActiveStake);
        if (amount != 0) {
            uint256 oldTotal = os.totalStake;
            uint256 newTotal = oldTotal + amount;
            os.totalStake = newTotal.toUint128();
            _totals.totalBonded += uint128(amount);
            _updatePool(o, os, oldTotal, newTotal, c, prev, next);
        }
        emit Reward(o, amount);
    }

    /// @dev Mints `o`'s share of round `c`'s rewards and splits it between its pool and its own (pending) stake.
    function _mintReward(address o, Orchestrator storage os, uint256 c, uint256 totalActiveStake)
        private
        returns (uint256 amount)
    {
        // An active orchestrator is registered, hence bonded to itself.
        Delegator storage d = _delegators[o];
        // Claimed through c - 1 (the reward of c is not in yet), so the cut below is stake added in round c.
        (, uint256 pending) = _claim(o, d, o, c);
        os.lastRewardRound = uint64(c);
        EarningsPool storage pool = _touch(o, os, c);
        uint256 stakeAtRoundStart = pool.totalStake;
        amount = IMinter(minter).createReward(stakeAtRoundStart, totalActiveStake);
        if (amount == 0) return 0;
        uint256 rewardCut = os.pendingCutsRound <= c ? os.pendingRewardCut : os.rewardCut;
        d.pendingAmount = (pending + _raiseRewardFactor(pool, stakeAtRoundStart, amount, rewardCut)).toUint128();
    }

    /// @dev Raises the pool's CRF by the delegators' part of `amount`:
    /// CRF_c = CRF_{c-1} * (1 + delegatorsReward / stakeAtRoundStart), rounded down. Returns the orchestrator's part:
    /// its cut plus the rounding dust, which earns from the next round like new stake. The delegators' part is
    /// what the new factor gives `stakeAtRoundStart` rounded *up*: stakes not yet claimed are real numbers whose
    /// sum may exceed the integer stake by a fraction, so rounding it down would let them claim a wei more than
    /// the orchestrator holds.
    function _raiseRewardFactor(EarningsPool storage pool, uint256 stakeAtRoundStart, uint256 amount, uint256 rewardCut)
        private
        returns (uint256)
    {
        uint256 delegatorsReward = amount - amount * rewardCut / PPM;
        uint256 crf = pool.cumulativeRewardFactor;
        uint256 crfIncrease = Math.mulDiv(crf, delegatorsReward, stakeAtRoundStart);
        pool.cumulativeRewardFactor = (crf + crfIncrease).toUint128();
        return amount - Math.mulDiv(crfIncrease, stakeAtRoundStart, crf, Math.Rounding.Ceil);
    }

    /// @inheritdoc IBondingManager
    function updateOrchestratorWithFees(address orchestrator, uint256 fees, uint256 round) external {
        if (msg.sender != ticketBroker) revert OnlyTicketBroker(msg.sender);
        uint256 c = _currentRound();
        if (round > c) revert FeeRoundInFuture(round, c);
        if (round == 0 || round + maxFeeBackfillRounds < c) revert FeeRoundTooOld(round, c);
        Orchestrator storage os = _orchestrators[orchestrator];
        (, uint256 feeShare) = _cutsForRound(orchestrator, os, round);
        uint256 delegatorsFees = fees * feeShare / PPM;
        if (delegatorsFees != 0) delegatorsFees = _creditPools(orchestrator, os, round, c, delegatorsFees);
        uint256 orchestratorFees = fees - delegatorsFees;
        if (orchestratorFees != 0) {
            Delegator storage d = _delegators[orchestrator];
            d.fees = (d.fees + orchestratorFees).toUint128();
        }
        emit FeesCredited(orchestrator, fees, round);
    }

    /// @inheritdoc IBondingManager
    function slash(address orchestrator, uint256 fraction, address finder) external {
        if (!isVerifier[msg.sender]) revert NotVerifier(msg.sender);
        if (fraction > PPM) revert InvalidFraction(fraction);
        uint256 c = _currentRound();
        Orchestrator storage os = _orchestrators[orchestrator];
        Delegator storage d = _delegators[orchestrator];

        uint256 bondPenalty;
        if (d.delegate == orchestrator) {
            (uint256 bonded, uint256 pending) = _claim(orchestrator, d, orchestrator, c);
            uint256 selfBond = bonded + pending;
            bondPenalty = selfBond * fraction / PPM;
            // The pool keeps the stake at the round's start; take the snapshot before the stake drops.
            _touch(orchestrator, os, c);
            _takeStake(d, bonded, pending, bondPenalty);
            if (bondPenalty == selfBond) d.delegate = address(0);
            _totals.totalBonded -= uint128(bondPenalty);
            os.totalStake -= uint128(bondPenalty);
        }
        uint256 penalty = bondPenalty + _slashLocks(orchestrator, fraction);

        // Out of the active set at once, whatever the slash.
        if (_pool.contains(orchestrator)) {
            _pool.remove(orchestrator);
            _totals.nextRoundTotalActiveStake -= uint128(os.totalStake + bondPenalty);
        }
        if (os.deactivationRound > c) {
            os.deactivationRound = uint64(c);
            emit OrchestratorDeactivated(orchestrator, c);
        }
        if (d.delegate != orchestrator && os.registered) {
            os.registered = false;
            emit OrchestratorResigned(orchestrator, c);
        }

        uint256 finderReward = finder == address(0) ? 0 : penalty * _params.finderFee / PPM;
        emit Slash(orchestrator, finder, penalty, finderReward);
        if (finderReward != 0) ILivepeerToken(token).transfer(finder, finderReward);
        if (penalty > finderReward) ILivepeerToken(token).burn(penalty - finderReward);
    }

    /// @inheritdoc IBondingManager
    function setCurrentRoundTotalActiveStake() external {
        if (msg.sender != roundsManager) revert OnlyRoundsManager(msg.sender);
        IRoundsManager rm = IRoundsManager(msg.sender);
        uint256 round = rm.currentRound();
        uint256 total = _totals.nextRoundTotalActiveStake;
        _roundCache = RoundCache({
            round: round.toUint64(),
            endBlock: rm.nextRoundStartBlock().toUint64(),
            totalActiveStake: uint128(total)
        });
        emit CurrentRoundTotalActiveStakeSet(round, total);
    }

    // =============================================================================================================
    // Owner
    // =============================================================================================================

    /// @inheritdoc IBondingManager
    function setUnbondingPeriod(uint256 newUnbondingPeriod) external onlyOwner {
        if (newUnbondingPeriod == 0) revert InvalidUnbondingPeriod(0);
        _params.unbondingPeriod = newUnbondingPeriod.toUint64();
        emit UnbondingPeriodSet(newUnbondingPeriod);
    }

    /// @inheritdoc IBondingManager
    function setMinimumStake(uint256 newMinimumStake) external onlyOwner {
        _params.minimumStake = newMinimumStake.toUint128();
        emit MinimumStakeSet(newMinimumStake);
    }

    /// @inheritdoc IBondingManager
    function setMaxActiveOrchestrators(uint256 newMaxActiveOrchestrators) external onlyOwner {
        uint256 size = _pool.size;
        if (newMaxActiveOrchestrators == 0 || newMaxActiveOrchestrators < size) {
            revert InvalidMaxActiveOrchestrators(newMaxActiveOrchestrators, size);
        }
        _params.maxActiveOrchestrators = newMaxActiveOrchestrators.toUint32();
        emit MaxActiveOrchestratorsSet(newMaxActiveOrchestrators);
    }

    /// @inheritdoc IBondingManager
    function setFinderFee(uint256 newFinderFee) external onlyOwner {
        if (newFinderFee > MAX_FINDER_FEE) revert InvalidFinderFee(newFinderFee);
        _params.finderFee = uint32(newFinderFee);
        emit FinderFeeSet(newFinderFee);
    }

    /// @inheritdoc IBondingManager
    function setMaxFeeBackfillRounds(uint256 newMaxFeeBackfillRounds) external onlyOwner {
        if (newMaxFeeBackfillRounds > MAX_FEE_BACKFILL_ROUNDS) {
            revert InvalidMaxFeeBackfillRounds(newMaxFeeBackfillRounds, MAX_FEE_BACKFILL_ROUNDS);
        }
        maxFeeBackfillRounds = newMaxFeeBackfillRounds;
        emit MaxFeeBackfillRoundsSet(newMaxFeeBackfillRounds);
    }

    /// @inheritdoc IBondingManager
    function setTicketBroker(address newTicketBroker) external onlyOwner {
        if (newTicketBroker == address(0)) revert ZeroAddress();
        ticketBroker = newTicketBroker;
        emit TicketBrokerSet(newTicketBroker);
    }

    /// @inheritdoc IBondingManager
    function setVerifier(address verifier, bool enabled) external onlyOwner {
        if (verifier == address(0)) revert ZeroAddress();
        isVerifier[verifier] = enabled;
        emit VerifierSet(verifier, enabled);
    }

    /// @inheritdoc IBondingManager
    function setRoundsManager(address newRoundsManager) external onlyOwner {
        if (newRoundsManager == address(0)) revert ZeroAddress();
        roundsManager = newRoundsManager;
        emit RoundsManagerSet(newRoundsManager);
    }

    /// @inheritdoc IBondingManager
    function setMinter(address newMinter) external onlyOwner {
        if (newMinter == address(0)) revert ZeroAddress();
        minter = newMinter;
        emit MinterSet(newMinter);
    }

    // =============================================================================================================
    // Views
    // =============================================================================================================

    /// @inheritdoc IBondingManager
    function unbondingPeriod() external view returns (uint256) {
        return _params.unbondingPeriod;
    }

    /// @inheritdoc IBondingManager
    function minimumStake() external view returns (uint256) {
        return _params.minimumStake;
    }

    /// @inheritdoc IBondingManager
    function maxActiveOrchestrators() external view returns (uint256) {
        return _params.maxActiveOrchestrators;
    }

    /// @inheritdoc IBondingManager
    function finderFee() external view returns (uint256) {
        return _params.finderFee;
    }

    /// @inheritdoc IBondingManager
    function getDelegator(address delegator) external view returns (DelegatorInfo memory info) {
        Delegator storage d = _delegators[delegator];
        info.bondedAmount = uint256(d.bondedAmount) + d.pendingAmount;
        info.fees = d.fees;
        info.delegate = d.delegate;
        info.startRound = d.startRound;
        info.lastClaimRound = d.lastClaimRound;
        info.nextUnbondingLockId = d.nextUnbondingLockId;
    }

    /// @inheritdoc IBondingManager
    function getOrchestrator(address orchestrator) external view returns (OrchestratorInfo memory info) {
        Orchestrator storage os = _orchestrators[orchestrator];
        info.registered = os.registered;
        (info.rewardCut, info.feeShare) = _cutsForRound(orchestrator, os, _viewRound());
        info.pendingRewardCut = os.pendingRewardCut;
        info.pendingFeeShare = os.pendingFeeShare;
        info.pendingCutsRound = os.pendingCutsRound;
        info.lastRewardRound = os.lastRewardRound;
        info.activationRound = os.activationRound;
        info.deactivationRound = os.deactivationRound;
        info.totalStake = os.totalStake;
    }

    /// @inheritdoc IBondingManager
    function getUnbondingLock(address delegator, uint256 unbondingLockId)
        external
        view
        returns (uint256 amount, uint256 withdrawRound)
    {
        Lock storage lock = _locks[delegator][unbondingLockId];
        withdrawRound = lock.withdrawRound;
        amount = _lockValue(_lockBooks[delegator], lock.shares, lock.epoch);
    }

    /// @inheritdoc IBondingManager
    function getEarningsPool(address orchestrator, uint256 round)
        external
        view
        returns (uint256 totalStake, uint256 cumulativeRewardFactor, uint256 cumulativeFeeFactor)
    {
        EarningsPool storage pool = _pools[orchestrator][round];
        return (pool.totalStake, pool.cumulativeRewardFactor, pool.cumulativeFeeFactor);
    }

    /// @inheritdoc IBondingManager
    function pendingStake(address delegator) external view returns (uint256 stake) {
        (stake,) = _pendingEarnings(delegator);
    }

    /// @inheritdoc IBondingManager
    function pendingFees(address delegator) external view returns (uint256 fees) {
        (, fees) = _pendingEarnings(delegator);
    }

    /// @inheritdoc IBondingManager
    function cutsForRound(address orchestrator, uint256 round)
        external
        view
        returns (uint256 rewardCut, uint256 feeShare)
    {
        return _cutsForRound(orchestrator, _orchestrators[orchestrator], round);
    }

    /// @inheritdoc IBondingManager
    function isActiveOrchestrator(address orchestrator) external view returns (bool) {
        return _isActive(_orchestrators[orchestrator], _viewRound());
    }

    /// @inheritdoc IBondingManager
    function isRegisteredOrchestrator(address orchestrator) external view returns (bool) {
        return _orchestrators[orchestrator].registered;
    }

    /// @inheritdoc IBondingManager
    function orchestratorTotalStake(address orchestrator) external view returns (uint256) {
        return _orchestrators[orchestrator].totalStake;
    }

    /// @inheritdoc IBondingManager
    function getTotalBonded() external view returns (uint256) {
        return _totals.totalBonded;
    }

    /// @inheritdoc IBondingManager
    function currentRoundTotalActiveStake() external view returns (uint256) {
        return _roundCache.totalActiveStake;
    }

    /// @inheritdoc IBondingManager
    function nextRoundTotalActiveStake() external view returns (uint256) {
        return _totals.nextRoundTotalActiveStake;
    }

    /// @inheritdoc IBondingManager
    function getFirstOrchestratorInPool() external view returns (address) {
        return _pool.head;
    }

    /// @inheritdoc IBondingManager
    function getLastOrchestratorInPool() external view returns (address) {
        return _pool.tail;
    }

    /// @inheritdoc IBondingManager
    function getNextOrchestratorInPool(address orchestrator) external view returns (address) {
        return _pool.getNext(orchestrator);
    }

    /// @inheritdoc IBondingManager
    function getPrevOrchestratorInPool(address orchestrator) external view returns (address) {
        return _pool.getPrev(orchestrator);
    }

    /// @inheritdoc IBondingManager
    function getOrchestratorPoolSize() external view returns (uint256) {
        return _pool.size;
    }

    /// @inheritdoc IBondingManager
    function isInPool(address orchestrator) external view returns (bool) {
        return _pool.contains(orchestrator);
    }

    // =============================================================================================================
    // Internals: rounds
    // =============================================================================================================

    function _loadRoundCache() private view returns (RoundCache memory rc) {
        rc = _roundCache;
        // The cache is written when the RoundsManager initialises a round and is valid until that round ends.
        if (block.number >= rc.endBlock) {
            revert CurrentRoundNotInitialized(IRoundsManager(roundsManager).currentRound());
        }
    }

    function _currentRound() private view returns (uint256) {
        return _loadRoundCache().round;
    }

    /// @dev The current round for views, which must work whether or not it is initialised.
    function _viewRound() private view returns (uint256) {
        RoundCache memory rc = _roundCache;
        if (block.number < rc.endBlock) return rc.round;
        address rm = roundsManager;
        return rm == address(0) ? 0 : IRoundsManager(rm).currentRound();
    }

    function _isActive(Orchestrator storage os, uint256 round) private view returns (bool) {
        uint256 activation = os.activationRound;
        return activation != 0 && activation <= round && round < os.deactivationRound;
    }

    function _cutsForRound(address o, Orchestrator storage os, uint256 round)
        private
        view
        returns (uint256 rewardCut, uint256 feeShare)
    {
        if (!os.everRegistered) return (0, 0);
        if (round >= os.pendingCutsRound) return (os.pendingRewardCut, os.pendingFeeShare);
        uint256 from = os.cutsRound;
        if (round >= from) return (os.rewardCut, os.feeShare);
        // Walks back one cut change per step; fee credits ask at most `maxFeeBackfillRounds` rounds back.
        while (true) {
            PastCuts memory past = _pastCuts[o][from];
            if (past.fromRound == 0) return (0, 0);
            if (round >= past.fromRound) return (past.rewardCut, past.feeShare);
            from = past.fromRound;
        }
    }

    // =============================================================================================================
    // Internals: earnings
    // =============================================================================================================

    /// @dev Settles `delegator`'s earnings at `o` in round `c` and returns its stake parts afterwards. Rewards are
    /// settled through the end of `c` when `o` has already called reward in `c` (the factor is then final), else
    /// through `c - 1`; fees through every fee credited so far, with round `c`'s part kept as an offset so fees
    /// credited later for `c` still reach the stake that was bonded in `c`. Stake added in `c` stays pending.
    function _claim(address delegator, Delegator storage d, address o, uint256 c)
        private
        returns (uint256 bonded, uint256 pending)
    {
        uint256 last = d.lastClaimRound;
        bonded = d.bondedAmount;
        pending = d.pendingAmount;
        bool foldPending = last + 1 < c;
        // Claimed before in this round: without a pool for this round there has been no reward or fee since.
        if (!foldPending && (bonded == 0 || uint32(_orchestrators[o].poolRounds) != c)) return (bonded, pending);
        (uint256 stake, uint256 fees, uint256 endRound) = _settle(o, d, c, foldPending);
        if (foldPending) (bonded, pending) = (bonded + pending, 0);
        emit EarningsClaimed(o, delegator, stake - bonded, fees, last + 1, endRound);
        return (stake, pending);
    }

    /// @dev The state change of `_claim`: returns the new bonded stake, the fees settled and the last round whose
    /// reward is settled.
    function _settle(address o, Delegator storage d, uint256 c, bool foldPending)
        private
        returns (uint256 stake, uint256 fees, uint256 rewardRound)
    {
        Orchestrator storage os = _orchestrators[o];
        uint256 packed = os.poolRounds;
        bool lead = os.lastRewardRound == c;
        uint256 refRound = _latestPoolRound(packed, c - 1);
        uint256 endCrf;
        uint256 endCff;
        {
            uint256 factorPool = lead ? c : refRound;
            (endCrf, endCff) = _factors(o, factorPool);
            if (uint32(packed) != factorPool) (, endCff) = _factors(o, uint32(packed));
        }
        (stake, fees) = _earnings(o, d, endCrf, endCff, foldPending);
        (, uint256 refCff) = _factors(o, refRound);
        d.lastClaimRound = uint64(c - 1);
        d.factorRound = uint64(refRound);
        d.rewardLead = lead;
        d.bondedAmount = stake.toUint128();
        if (fees != 0) d.fees = (d.fees + fees).toUint128();
        if (foldPending) d.pendingAmount = 0;
        uint256 offset = endCff - refCff;
        if (offset != d.feeOffset) d.feeOffset = offset;
        rewardRound = lead ? c : c - 1;
    }

    function _pendingEarnings(address delegator) private view returns (uint256 stake, uint256 fees) {
        Delegator storage d = _delegators[delegator];
        address o = d.delegate;
        if (o == address(0)) return (uint256(d.bondedAmount) + d.pendingAmount, d.fees);
        (uint256 endCrf, uint256 endCff) = _factors(o, uint32(_orchestrators[o].poolRounds));
        (stake, fees) = _earnings(o, d, endCrf, endCff, true);
        fees += d.fees;
    }

    /// @dev `d`'s stake at `o` measured at factors (`endCrf`, `endCff`) and the fees earned since its last claim;
    /// the pending part is left out unless `withPending`.
    function _earnings(address o, Delegator storage d, uint256 endCrf, uint256 endCff, bool withPending)
        private
        view
        returns (uint256 stake, uint256 fees)
    {
        uint256 last = d.lastClaimRound;
        uint256 bonded = d.bondedAmount;
        if (bonded != 0) {
            (uint256 crf, uint256 cff) = _factorsAt(o, last, d.factorRound);
            // With a reward lead the stake is measured one round later; per unit of its factor, the fees owed
            // are the same (stake_a / CRF_a is constant between claims).
            if (d.rewardLead) (crf,) = _factors(o, last + 1);
            stake = Math.mulDiv(bonded, endCrf, crf);
            fees = Math.mulDiv(bonded, endCff - cff - d.feeOffset, crf);
        }
        uint256 pending = d.pendingAmount;
        if (withPending && pending != 0) {
            (uint256 crf, uint256 cff) = _factors(o, last + 1);
            stake += Math.mulDiv(pending, endCrf, crf);
            fees += Math.mulDiv(pending, endCff - cff, crf);
        }
    }

    /// @dev Factors at the end of `round`: its pool, or the pool at `fallbackRound` (the latest earlier pool when
    /// the reference was taken; any pool materialised since in between would have materialised `round` too).
    function _factorsAt(address o, uint256 round, uint256 fallbackRound) private view returns (uint256, uint256) {
        EarningsPool storage pool = _pools[o][round];
        uint256 crf = pool.cumulativeRewardFactor;
        if (crf != 0) return (crf, pool.cumulativeFeeFactor);
        return _factors(o, fallbackRound);
    }

    /// @dev Factors of the pool at `round`, or the initial factors when there is none.
    function _factors(address o, uint256 round) private view returns (uint256, uint256) {
        EarningsPool storage pool = _pools[o][round];
        uint256 crf = pool.cumulativeRewardFactor;
        if (crf == 0) return (PRECISE, 0);
        return (crf, pool.cumulativeFeeFactor);
    }

    /// @dev The latest remembered pool round ≤ `round` (0 when none).
    function _latestPoolRound(uint256 packed, uint256 round) private pure returns (uint256) {
        for (uint256 i; i < POOL_ROUND_SLOTS; ++i) {
            uint256 r = uint32(packed >> (32 * i));
            if (r == 0) return 0;
            if (r <= round) return r;
        }
        return 0;
    }

    /// @dev Materialises `o`'s pool of the current round `c` if this is the first event of the round for `o`:
    /// the stake at the start of the round and the latest factors.
    function _touch(address o, Orchestrator storage os, uint256 c) private returns (EarningsPool storage pool) {
        pool = _pools[o][c];
        uint256 packed = os.poolRounds;
        uint256 latest = uint32(packed);
        if (latest == c) return pool;
        (uint256 crf, uint256 cff) = _factors(o, latest);
        pool.totalStake = os.totalStake;
        pool.cumulativeRewardFactor = uint128(crf);
        if (cff != 0) pool.cumulativeFeeFactor = cff;
        os.poolRounds = (packed << 32) | c.toUint32();
    }

    /// @dev Credits `amount` wei of delegators' fees to `o`'s pool of round `r` and carries it into every later
    /// pool up to the current round `c`, materialising the pools of `r..c`. Returns the amount credited (0 when
    /// nobody was staked in round `r`, or the amount is too small to move the factor).
    function _creditPools(address o, Orchestrator storage os, uint256 r, uint256 c, uint256 amount)
        private
        returns (uint256)
    {
        uint256[] memory stakes = _stakesAtRoundStarts(o, os, r, c);
        if (stakes[0] == 0) return 0;
        uint256 packed = os.poolRounds;
        (uint256 crf, uint256 cff) = _factors(o, _latestPoolRound(packed, r - 1));
        // Per unit of stake measured at a pool: fees * CRF_{r-1} / stake_r.
        uint256 delta = Math.mulDiv(amount, crf, stakes[0]);
        if (delta == 0) return 0;
        for (uint256 i; i < stakes.length; ++i) {
            (crf, cff) = _addFeeFactor(_pools[o][r + i], stakes[i], crf, i == 0 ? cff + delta : cff, delta);
        }
        os.poolRounds = _withPoolRounds(packed, r, c);
        return amount;
    }

    /// @dev Stake at the start of each round `r..c`, from the top: a round without a pool had no event, so its
    /// stake is that of the next round (or the current stake above the latest pool).
    function _stakesAtRoundStarts(address o, Orchestrator storage os, uint256 r, uint256 c)
        private
        view
        returns (uint256[] memory stakes)
    {
        stakes = new uint256[](c - r + 1);
        uint256 stake = os.totalStake;
        for (uint256 i = stakes.length; i > 0; --i) {
            EarningsPool storage pool = _pools[o][r + i - 1];
            if (pool.cumulativeRewardFactor != 0) stake = pool.totalStake;
            stakes[i - 1] = stake;
        }
    }

    /// @dev Adds `delta` to a materialised pool's fee factor, or materialises it as a copy of the previous round's
    /// factors (`prevCrf`, `copyCff`, which already carry `delta`). Returns the pool's factors afterwards.
    function _addFeeFactor(EarningsPool storage pool, uint256 stake, uint256 prevCrf, uint256 copyCff, uint256 delta)
        private
        returns (uint256 crf, uint256 cff)
    {
        crf = pool.cumulativeRewardFactor;
        if (crf == 0) {
            (crf, cff) = (prevCrf, copyCff);
            pool.totalStake = uint128(stake);
            pool.cumulativeRewardFactor = uint128(crf);
        } else {
            cff = pool.cumulativeFeeFactor + delta;
        }
        pool.cumulativeFeeFactor = cff;
    }

    /// @dev `packed` with every round of `r..c` (now all materialised) first, then the older remembered rounds.
    function _withPoolRounds(uint256 packed, uint256 r, uint256 c) private pure returns (uint256 newPacked) {
        uint256 count;
        for (uint256 k = c; k >= r && count < POOL_ROUND_SLOTS; --k) {
            newPacked |= uint256(k.toUint32()) << (32 * count++);
        }
        for (uint256 i; i < POOL_ROUND_SLOTS && count < POOL_ROUND_SLOTS; ++i) {
            uint256 old = uint32(packed >> (32 * i));
            if (old == 0) break;
            if (old < r) newPacked |= old << (32 * count++);
        }
    }

    // =============================================================================================================
    // Internals: stake and the active set
    // =============================================================================================================

    function _increaseStake(address o, Orchestrator storage os, uint256 c, uint256 amount, address prev, address next)
        private
    {
        _touch(o, os, c);
        uint256 oldTotal = os.totalStake;
        uint256 newTotal = oldTotal + amount;
        os.totalStake = newTotal.toUint128();
        if (os.registered || _pool.contains(o)) _updatePool(o, os, oldTotal, newTotal, c, prev, next);
    }

    function _decreaseStake(address o, Orchestrator storage os, uint256 c, uint256 amount, address prev, address next)
        private
    {
        _touch(o, os, c);
        uint256 oldTotal = os.totalStake;
        uint256 newTotal = oldTotal - amount;
        os.totalStake = uint128(newTotal);
        if (os.registered || _pool.contains(o)) _updatePool(o, os, oldTotal, newTotal, c, prev, next);
    }

    /// @dev Puts `o` where its new stake belongs: updated in place, joined (evicting the last member when the set
    /// is full and `o` has more stake), or removed when it no longer qualifies.
    function _updatePool(
        address o,
        Orchestrator storage os,
        uint256 oldTotal,
        uint256 newTotal,
        uint256 c,
        address prev,
        address next
    ) private {
        Params memory params = _params;
        bool qualifies = os.registered && newTotal != 0 && newTotal >= params.minimumStake;
        if (_pool.contains(o)) {
            if (!qualifies) {
                _pool.remove(o);
                _totals.nextRoundTotalActiveStake -= uint128(oldTotal);
                _deactivate(o, os, c + 1);
                return;
            }
            _pool.update(o, newTotal, prev, next);
            _totals.nextRoundTotalActiveStake = (_totals.nextRoundTotalActiveStake + newTotal - oldTotal).toUint128();
            return;
        }
        if (!qualifies) return;
        if (_pool.size >= params.maxActiveOrchestrators) {
            address last = _pool.tail;
            uint256 lastStake = _pool.getKey(last);
            if (newTotal <= lastStake) return;
            _pool.remove(last);
            _totals.nextRoundTotalActiveStake -= uint128(lastStake);
            _deactivate(last, _orchestrators[last], c + 1);
            // A hint next to the evicted tail now means the end of the list.
            if (next == last) next = address(0);
            if (prev == last) prev = _pool.tail;
        }
        _pool.insert(o, newTotal, prev, next);
        _totals.nextRoundTotalActiveStake += uint128(newTotal);
        if (_isActive(os, c)) {
            // Left and came back within the round: it never stopped being active.
            os.deactivationRound = NEVER;
            emit OrchestratorActivated(o, os.activationRound);
        } else {
            os.activationRound = uint64(c + 1);
            os.deactivationRound = NEVER;
            emit OrchestratorActivated(o, c + 1);
        }
    }

    function _deactivate(address o, Orchestrator storage os, uint256 round) private {
        os.deactivationRound = uint64(round);
        emit OrchestratorDeactivated(o, round);
    }

    function _resign(address o, Orchestrator storage os, uint256 c) private {
        os.registered = false;
        emit OrchestratorResigned(o, c);
    }

    // =============================================================================================================
    // Internals: unbonding locks
    // =============================================================================================================

    /// @dev Removes `amount` from a delegator's stake, taking stake added this round first (it has not started
    /// earning yet).
    function _takeStake(Delegator storage d, uint256 bonded, uint256 pending, uint256 amount) private {
        uint256 fromPending = amount < pending ? amount : pending;
        d.pendingAmount = uint128(pending - fromPending);
        d.bondedAmount = uint128(bonded - (amount - fromPending));
    }

    function _createLock(address account, Delegator storage d, uint256 amount, uint256 c)
        private
        returns (uint256 lockId, uint256 withdrawRound)
    {
        withdrawRound = c + _params.unbondingPeriod;
        LockBook storage book = _lockBooks[account];
        uint256 scaleLoss = book.scaleLoss;
        uint256 shares = scaleLoss == 0 ? amount : Math.mulDiv(amount, PRECISE, PRECISE - scaleLoss);
        lockId = d.nextUnbondingLockId;
        d.nextUnbondingLockId = uint24(lockId + 1);
        _locks[account][lockId] = Lock(shares.toUint128(), withdrawRound.toUint64(), book.epoch);
        book.totalShares += uint128(shares);
    }

    /// @dev Deletes the lock and returns what it is worth now.
    function _consumeLock(address account, uint256 lockId) private returns (uint256 amount, uint256 withdrawRound) {
        Lock memory lock = _locks[account][lockId];
        withdrawRound = lock.withdrawRound;
        if (withdrawRound == 0) revert InvalidUnbondingLock(lockId);
        LockBook storage book = _lockBooks[account];
        amount = _lockValue(book, lock.shares, lock.epoch);
        if (lock.epoch == book.epoch) book.totalShares -= lock.shares;
        delete _locks[account][lockId];
    }

    function _lockValue(LockBook storage book, uint256 shares, uint256 epoch) private view returns (uint256) {
        if (epoch != book.epoch) return 0;
        uint256 scaleLoss = book.scaleLoss;
        return scaleLoss == 0 ? shares : shares * (PRECISE - scaleLoss) / PRECISE;
    }

    /// @dev Shrinks all of `account`'s locks by `fraction` ppm and returns the LPT taken.
    function _slashLocks(address account, uint256 fraction) private returns (uint256 penalty) {
        LockBook storage book = _lockBooks[account];
        uint256 shares = book.totalShares;
        if (shares == 0 || fraction == 0) return 0;
        uint256 scale = PRECISE - book.scaleLoss;
        uint256 before = shares * scale / PRECISE;
        if (fraction == PPM) {
            // Every lock worth nothing: a new epoch voids them without touching each one.
            book.epoch += 1;
            book.totalShares = 0;
            book.scaleLoss = 0;
            return before;
        }
        uint256 newScale = scale * (PPM - fraction) / PPM;
        if (newScale == 0) {
            book.epoch += 1;
            book.totalShares = 0;
            book.scaleLoss = 0;
            return before;
        }
        book.scaleLoss = uint96(PRECISE - newScale);
        penalty = before - shares * newScale / PRECISE;
    }
}
