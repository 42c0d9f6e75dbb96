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
/// Delegator positions. Stake added in round `r` is `pendingAmount` (of `pendingRound`), measured at that round's
/// pool: it earns from the next round. The rest is `bondedAmount`, measured at the pool of `stakeRound`; the stake
/// is `bonded * CRF_latest / CRF_stakeRound + pending * CRF_latest / CRF_pendingRound`, O(1) whatever the rounds.
/// Fees are kept on a separate fee side that is never re-measured: `feeUnits` at the pool of `baseRound`, earning
/// `feeUnits * (CFF_latest - CFF_base) / CRF_base`, minus a correction for units folded in later than `baseRound`
/// (they must not earn the rounds before they arrived). A claim only moves earned fees into `fees` (`feesSettled`
/// remembers how much of the formula is paid), so fees credited late for an earlier round (they raise every pool
/// from that round on) still reach the stake that was there in that round. Pending stake of an earlier round is
/// folded into the bonded part at the next stake change. Two corrections are kept, which makes late fees exact
/// with a backfill window of up to 2 rounds (one fold per round); with more, the oldest live correction is merged
/// into the next, so those units miss late fees of the rounds in between (never gain any). Stake that leaves
/// (unbond, move, slash) moves its fee units to an exit record that keeps earning the fees still to be credited
/// for the rounds it was in, until they close; one exit record per delegator (a second exit to another delegate or
/// base while the first is open closes the first early).
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
        uint64 lastClaimRound;
        uint24 nextUnbondingLockId;
        uint128 bondedAmount;
        uint128 fees;
        uint128 pendingAmount;
        uint32 pendingRound;
        uint32 startRound;
        uint32 stakeRound;
        uint32 baseRound;
        // Fee side: the bonded stake in units of the `baseRound` pool, and the parts of it that only arrived later,
        // `olderUnits` at `olderRound` and `newerUnits` at `newerRound`.
        uint128 feeUnits;
        uint128 feesSettled;
        uint128 olderUnits;
        uint32 olderRound;
        uint32 newerRound;
        uint128 newerUnits;
        // Stake that left `exitDelegate` in round `exitEnd` keeps the fees later credited for the rounds it was in
        // until those rounds close: `exitUnits` at the pool of `exitBase`.
        // `exitLate` of them only arrived at `exitLateRound`, `exitLeft` already left at `exitLeftRound`.
        address exitDelegate;
        uint32 exitBase;
        uint32 exitEnd;
        uint32 exitLateRound;
        uint128 exitUnits;
        uint96 exitSettled;
        uint32 exitLeftRound;
        uint128 exitLate;
        uint128 exitLeft;
    }

    /// @dev Laid out so that a fee credit (activity, the cuts in force, stake, the CRF of the reward round's start)
    /// reads two slots. Round numbers fit in 32 bits (the round cache stores them so).
    struct Orchestrator {
        uint128 totalStake;
        uint32 lastRewardRound;
        uint32 activationRound;
        uint64 deactivationRound;
        // The CRF at the start of `lastRewardRound` (before its reward).
        uint128 rewardRoundStartCrf;
        // The latest cuts, in force from `pendingCutsRound`; before it, those in force from `cutsRound`.
        uint32 pendingCutsRound;
        uint32 pendingRewardCut;
        uint32 pendingFeeShare;
        bool registered;
        bool everRegistered;
        uint32 cutsRound;
        uint32 rewardCut;
        uint32 feeShare;
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
        uint32 round;
        uint32 activeCount;
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
    // Beside the TicketBroker's address: a fee credit reads both.
    uint8 private _maxFeeBackfillRounds = 2;
    /// @inheritdoc IBondingManager
    mapping(address account => bool) public isVerifier;

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
        if (_claim(o, d, o, c) == 0) revert NotSelfBonded(o);

        Orchestrator storage os = _orchestrators[o];
        uint256 effectiveRound;
        if (!os.everRegistered) {
            // Nobody but itself can be delegated to it yet, so the cuts can apply at once.
            os.everRegistered = true;
            (os.rewardCut, os.feeShare) = (uint32(rewardCut), uint32(feeShare));
            (os.pendingRewardCut, os.pendingFeeShare) = (uint32(rewardCut), uint32(feeShare));
            os.cutsRound = uint32(c);
            os.pendingCutsRound = uint32(c);
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
                os.cutsRound = uint32(pendingRound);
            }
            (os.pendingRewardCut, os.pendingFeeShare) = (uint32(rewardCut), uint32(feeShare));
            os.pendingCutsRound = uint32(effectiveRound);
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
        // LPT amounts, far below 2^128 (casts are checked).
        unchecked {
            uint256 c = _currentRound();
            Delegator storage d = _delegators[msg.sender];
            address current = d.delegate;
            Orchestrator storage toO = _orchestrators[to];
            if (to != msg.sender && !toO.registered) revert NotRegisteredOrchestrator(to);
            (uint256 stake, uint256 added) = _leaveForBond(d, current, to, amount, c, hints);
            _increaseStake(to, toO, c, added, hints.currPrev, hints.currNext);
            if (amount != 0) {
                _totals.totalBonded += amount.toUint128();
                ILivepeerToken(token).transferFrom(msg.sender, address(this), amount);
            }
            emit Bond(to, current, msg.sender, amount, stake + amount);
        }
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
            // An unbonded position is all zeros but `fees`: start afresh.
            d.delegate = to;
            d.lastClaimRound = uint64(c - 1);
            _addPending(d, amount, c);
            return (0, amount);
        }
        stake = _claim(msg.sender, d, current, c);
        if (current == to) {
            if (amount == 0) revert ZeroAmount();
            _addPending(d, amount, c);
            return (stake, amount);
        }
        if (_orchestrators[msg.sender].registered) revert OrchestratorCannotMove(msg.sender);
        _decreaseStake(current, _orchestrators[current], c, stake, hints.oldPrev, hints.oldNext);
        // At the new delegate the whole stake is new: it earns there from the next round.
        added = stake + amount;
        _clearPosition(current, d, c);
        d.delegate = to;
        _addPending(d, added, c);
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
        uint256 stake = _claim(delegator, d, o, c);
        if (amount > stake) revert InsufficientBond(amount, stake);
        Orchestrator storage os = _orchestrators[o];
        // The exit record measures the leaving stake at this round's pool.
        _touch(o, os, c);
        if (amount == stake) {
            _clearPosition(o, d, c);
            d.delegate = address(0);
            if (o == delegator && os.registered) _resign(o, os, c);
        } else {
            _removeStake(o, d, amount, c);
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
        // c >= 1; a lock holds an LPT amount, far below 2^128.
        unchecked {
            uint256 c = _currentRound();
            address delegator = msg.sender;
            Delegator storage d = _delegators[delegator];
            address o = d.delegate;
            if (o == address(0)) revert NotBonded(delegator);
            _claim(delegator, d, o, c);
            (uint256 amount,) = _consumeLock(delegator, lockId);
            _addPending(d, amount, c);
            _totals.totalBonded += uint128(amount);
            _increaseStake(o, _orchestrators[o], c, amount, prev, next);
            emit Rebond(delegator, o, lockId, amount);
        }
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
        // c >= 1; a lock holds an LPT amount, far below 2^128.
        unchecked {
            uint256 c = _currentRound();
            address delegator = msg.sender;
            Delegator storage d = _delegators[delegator];
            if (d.delegate != address(0)) revert AlreadyBonded(delegator, d.delegate);
            Orchestrator storage os = _orchestrators[to];
            if (to != delegator && !os.registered) revert NotRegisteredOrchestrator(to);
            (uint256 amount,) = _consumeLock(delegator, lockId);
            // An unbonded position is all zeros but `fees`: start afresh at `to`.
            d.delegate = to;
            d.lastClaimRound = uint64(c - 1);
            _addPending(d, amount, c);
            _totals.totalBonded += uint128(amount);
            _increaseStake(to, os, c, amount, prev, next);
            emit Rebond(delegator, to, lockId, amount);
        }
    }

    /// @inheritdoc IBondingManager
    function withdrawStake(uint256 unbondingLockId) external {
        uint256 c = _currentRound();
        // Reverts `InvalidUnbondingLock` for an unknown or used id; a lock not due reverts the deletion with it.
        (uint256 amount, uint256 withdrawRound) = _consumeLock(msg.sender, unbondingLockId);
        if (withdrawRound > c) revert UnbondingLockNotWithdrawable(unbondingLockId, withdrawRound);
        emit WithdrawStake(msg.sender, unbondingLockId, amount, withdrawRound);
        if (amount != 0) ILivepeerToken(token).transfer(msg.sender, amount);
    }

    /// @inheritdoc IBondingManager
    function withdrawFees(address payable recipient, uint256 amount) external {
        if (recipient == address(0)) revert ZeroAddress();
        Delegator storage d = _claimCaller();
        uint256 fees = d.fees;
        if (amount > fees) revert InsufficientFees(amount, fees);
        d.fees = uint128(fees - amount);
        emit WithdrawFees(msg.sender, recipient, amount);
        // Effects are done: a reentrant call through `recipient` sees the fees already debited (THREATS 15).
        IMinter(minter).trustedWithdrawETH(recipient, amount);
    }

    /// @inheritdoc IBondingManager
    function claimEarnings() external {
        _claimCaller();
    }

    /// @dev Claims the caller's earnings through the current round (or settles its exit record when unbonded).
    function _claimCaller() private returns (Delegator storage d) {
        uint256 c = _currentRound();
        d = _delegators[msg.sender];
        address o = d.delegate;
        if (o != address(0)) _claim(msg.sender, d, o, c);
        else _settleExit(d, c);
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
        // Stake totals are LPT amounts, far below 2^128; the new total is cast with a check.
        unchecked {
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
    }

    /// @dev Mints `o`'s share of round `c`'s rewards and splits it between its pool and its own (pending) stake.
    function _mintReward(address o, Orchestrator storage os, uint256 c, uint256 totalActiveStake)
        private
        returns (uint256 amount)
    {
        // The cut is at most the minted amount (cast with a check).
        unchecked {
            // An active orchestrator is registered, hence bonded to itself.
            Delegator storage d = _delegators[o];
            _claim(o, d, o, c);
            os.lastRewardRound = uint32(c);
            EarningsPool storage pool = _touch(o, os, c);
            // Fee credits for round c need the CRF of its start; keeping it here saves them two cold reads.
            os.rewardRoundStartCrf = pool.cumulativeRewardFactor;
            uint256 stakeAtRoundStart = pool.totalStake;
            amount = IMinter(minter).createReward(stakeAtRoundStart, totalActiveStake);
            if (amount == 0) return 0;
            uint256 rewardCut = os.pendingCutsRound <= c ? os.pendingRewardCut : os.rewardCut;
            // The cut is stake added in this round: it earns from the next one.
            uint256 cut = _raiseRewardFactor(pool, stakeAtRoundStart, amount, rewardCut);
            d.pendingAmount += cut.toUint128();
            d.pendingRound = uint32(c);
        }
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
        // rewardCut <= PPM, and the delegators' part (rounded up) never exceeds their share of `amount`.
        unchecked {
            uint256 delegatorsReward = amount - amount * rewardCut / PPM;
            uint256 crf = pool.cumulativeRewardFactor;
            uint256 crfIncrease = Math.mulDiv(crf, delegatorsReward, stakeAtRoundStart);
            pool.cumulativeRewardFactor = (crf + crfIncrease).toUint128();
            return amount - Math.mulDiv(crfIncrease, stakeAtRoundStart, crf, Math.Rounding.Ceil);
        }
    }

    /// @inheritdoc IBondingManager
    function updateOrchestratorWithFees(address orchestrator, uint256 fees, uint256 round)
        external
        returns (uint256 c, bool active)
    {
        if (msg.sender != ticketBroker) revert OnlyTicketBroker(msg.sender);
        c = _currentRound();
        if (round > c) revert FeeRoundInFuture(round, c);
        // round <= c < 2^32; fees < 2^128 (the broker pays from 128-bit balances, which `_creditPools` relies on) and
        // feeShare <= PPM.
        unchecked {
            if (round == 0 || round + _maxFeeBackfillRounds < c) revert FeeRoundTooOld(round, c);
            Orchestrator storage os = _orchestrators[orchestrator];
            active = _isActive(os, c);
            (, uint256 feeShare) = _cutsForRound(orchestrator, os, round);
            uint256 delegatorsFees = uint256(fees.toUint128()) * feeShare / PPM;
            if (delegatorsFees != 0) delegatorsFees = _creditPools(orchestrator, os, round, c, delegatorsFees);
            uint256 orchestratorFees = fees - delegatorsFees;
            if (orchestratorFees != 0) {
                Delegator storage d = _delegators[orchestrator];
                d.fees = (d.fees + orchestratorFees).toUint128();
            }
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
            uint256 selfBond = _claim(orchestrator, d, orchestrator, c);
            bondPenalty = selfBond * fraction / PPM;
            // The pool keeps the stake at the round's start; take the snapshot before the stake drops.
            _touch(orchestrator, os, c);
            if (bondPenalty == selfBond) {
                _clearPosition(orchestrator, d, c);
                d.delegate = address(0);
            } else {
                _removeStake(orchestrator, d, bondPenalty, c);
            }
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
            round: round.toUint32(),
            activeCount: uint32(_pool.size),
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
        _maxFeeBackfillRounds = uint8(newMaxFeeBackfillRounds);
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
    function maxFeeBackfillRounds() external view returns (uint256) {
        return _maxFeeBackfillRounds;
    }

    /// @inheritdoc IBondingManager
    function finderFee() external view returns (uint256) {
        return _params.finderFee;
    }

    /// @inheritdoc IBondingManager
    function getDelegator(address delegator) external view returns (DelegatorInfo memory info) {
        Delegator storage d = _delegators[delegator];
        (info.bondedAmount,) = _pendingEarnings(delegator);
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
    function currentRoundActiveCount() external view returns (uint256) {
        return _roundCache.activeCount;
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

    /// @dev The round views answer for: the last initialised one. A round's active set and cuts are fixed when it
    /// is initialised, and nothing can change before it is, so until then the previous round's stay in force.
    function _viewRound() private view returns (uint256) {
        return _roundCache.round;
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

    /// @dev Settles `delegator`'s earnings at `o` in round `c`: moves the fees earned so far into `fees` and folds
    /// pending stake of an earlier round into the bonded part. Returns the stake, rewards included.
    function _claim(address delegator, Delegator storage d, address o, uint256 c) private returns (uint256 stake) {
        // c >= 1 and fees are only taken when gross > settled.
        unchecked {
            _settleExit(d, c);
            uint256 gross;
            (stake, gross) = _position(o, d, false);
            uint256 settled = d.feesSettled;
            uint256 fees = gross > settled ? gross - settled : 0;
            if (d.pendingAmount != 0 && d.pendingRound < c) {
                _fold(o, d, c);
                (stake, gross) = _position(o, d, true);
            }
            if (fees != 0) d.fees = (d.fees + fees).toUint128();
            if (gross != settled) d.feesSettled = gross.toUint128();
            uint256 last = d.lastClaimRound;
            d.lastClaimRound = uint64(c - 1);
            emit EarningsClaimed(o, delegator, stake, fees, last + 1, c - 1);
        }
    }

    /// @dev `d`'s stake at `o` and the gross fees its position formula gives, at `o`'s latest factors. Fees are
    /// rounded down to pay, up (`up`) to snapshot when the formula changes (a fold or a removal): what is paid
    /// between two snapshots then never exceeds what the exact formula gives.
    function _position(address o, Delegator storage d, bool up) private view returns (uint256 stake, uint256 gross) {
        // Fee factors only grow with the round; stakes are far below 2^256.
        unchecked {
            (uint256 crf, uint256 cff) = _factors(o, uint32(_orchestrators[o].poolRounds));
            uint256 bonded = d.bondedAmount;
            if (bonded != 0) {
                (uint256 stakeCrf,) = _factors(o, d.stakeRound);
                stake = Math.mulDiv(bonded, crf, stakeCrf);
            }
            if (d.feeUnits != 0) gross = _bondedFees(o, d, cff, up);
            uint256 pending = d.pendingAmount;
            if (pending != 0) {
                (uint256 pendingCrf, uint256 pendingCff) = _factors(o, d.pendingRound);
                stake += Math.mulDiv(pending, crf, pendingCrf);
                gross += Math.mulDiv(pending, cff - pendingCff, pendingCrf, up ? Math.Rounding.Ceil : Math.Rounding.Floor);
            }
        }
    }

    /// @dev The fee side's gross fees at the latest fee factor `cff`: the base formula minus what it would pay the
    /// late parts for the rounds before they arrived.
    function _bondedFees(address o, Delegator storage d, uint256 cff, bool up) private view returns (uint256 gross) {
        // Fee factors only grow with the round; the subtraction saturates.
        unchecked {
            (uint256 baseCrf, uint256 baseCff) = _factors(o, d.baseRound);
            gross = Math.mulDiv(d.feeUnits, cff - baseCff, baseCrf, up ? Math.Rounding.Ceil : Math.Rounding.Floor);
            uint256 early = _earlyFees(o, d.olderUnits, d.olderRound, baseCrf, baseCff, up)
                + _earlyFees(o, d.newerUnits, d.newerRound, baseCrf, baseCff, up);
            gross = gross > early ? gross - early : 0;
        }
    }

    /// @dev What the base formula would pay `units` for the rounds before they arrived at `round` (subtracted from
    /// it, so rounded the other way: up unless `down`).
    function _earlyFees(address o, uint256 units, uint256 round, uint256 baseCrf, uint256 baseCff, bool down)
        private
        view
        returns (uint256)
    {
        if (units == 0) return 0;
        (, uint256 arrivalCff) = _factors(o, round);
        return Math.mulDiv(units, arrivalCff - baseCff, baseCrf, down ? Math.Rounding.Floor : Math.Rounding.Ceil);
    }

    /// @dev Folds the pending stake (of an earlier round) into the bonded part: the stake side is re-measured now
    /// (rounded down once), the fee side gains the pending units from the pending round on.
    function _fold(address o, Delegator storage d, uint256 c) private {
        uint256 pending = d.pendingAmount;
        uint256 round = d.pendingRound;
        (uint256 crf, uint256 stakeRound) = _finalFactor(o, c);
        (uint256 pendingCrf,) = _factors(o, round);
        d.bondedAmount = (_bondedNow(o, d, crf) + Math.mulDiv(pending, crf, pendingCrf)).toUint128();
        d.stakeRound = uint32(stakeRound);
        uint256 units = d.feeUnits;
        if (units == 0) {
            (d.feeUnits, d.baseRound) = (uint128(pending), uint32(round));
            (d.olderUnits, d.newerUnits) = (0, 0);
        } else {
            (uint256 baseCrf,) = _factors(o, d.baseRound);
            uint256 added = Math.mulDiv(pending, baseCrf, pendingCrf);
            d.feeUnits = (units + added).toUint128();
            _addLateUnits(d, added, round, c);
        }
        (d.pendingAmount, d.pendingRound) = (0, 0);
    }

    /// @dev Records `units` folded in at `round` as the newer late part. A late part whose round can no longer
    /// receive fees is final and dropped (the caller re-snapshots `feesSettled`); when both are still live the older
    /// merges into the newer's round.
    function _addLateUnits(Delegator storage d, uint256 units, uint256 round, uint256 c) private {
        // Bounded round arithmetic; the merged sum is cast with a check.
        unchecked {
            uint256 lastClosed = c - 1 - Math.min(c - 1, _maxFeeBackfillRounds);
            uint256 older = d.olderRound <= lastClosed ? 0 : d.olderUnits;
            uint256 newer = d.newerRound <= lastClosed ? 0 : d.newerUnits;
            if (newer != 0) (d.olderUnits, d.olderRound) = ((older + newer).toUint128(), d.newerRound);
            else if (older == 0) d.olderUnits = 0;
            (d.newerUnits, d.newerRound) = (uint128(units), uint32(round));
        }
    }

    /// @dev The current reward factor of `o` in round `c` and a pool round where it is final: round `c`'s pool once
    /// `o` has called reward in `c` (no more reward can come in `c`), else the latest pool before `c`.
    function _finalFactor(address o, uint256 c) private view returns (uint256 crf, uint256 round) {
        Orchestrator storage os = _orchestrators[o];
        round = os.lastRewardRound == c ? c : _latestPoolRound(os.poolRounds, c - 1);
        (crf,) = _factors(o, round);
    }

    /// @dev The bonded part's stake at `o`'s current factor `crf`.
    function _bondedNow(address o, Delegator storage d, uint256 crf) private view returns (uint256) {
        uint256 bonded = d.bondedAmount;
        if (bonded == 0) return 0;
        (uint256 stakeCrf,) = _factors(o, d.stakeRound);
        return Math.mulDiv(bonded, crf, stakeCrf);
    }

    /// @dev Adds `amount` of stake bonded in round `c` (after a claim, any pending stake is of round `c` too).
    function _addPending(Delegator storage d, uint256 amount, uint256 c) private {
        // uint256 sums of uint128 amounts; the casts below are checked.
        unchecked {
            d.pendingAmount = (d.pendingAmount + amount).toUint128();
            d.pendingRound = uint32(c);
            d.startRound = uint32(c + 1);
        }
    }

    /// @dev Removes `amount` (less than the stake) from a claimed position: pending stake first (it has not started
    /// earning), then the bonded part — exactly on the stake side, rounded up on the fee side, newest folded units
    /// first. The fees already settled stay; the removed stake earns nothing more, not even fees credited later for
    /// rounds it was in.
    function _removeStake(address o, Delegator storage d, uint256 amount, uint256 c) private {
        // `amount` is at most the stake, so `rest` is at most the bonded part.
        unchecked {
            uint256 pending = d.pendingAmount;
            uint256 fromPending = amount < pending ? amount : pending;
            if (fromPending != 0) d.pendingAmount = uint128(pending - fromPending);
            uint256 rest = amount - fromPending;
            if (rest != 0) {
                (uint256 crf, uint256 stakeRound) = _finalFactor(o, c);
                d.bondedAmount = uint128(_bondedNow(o, d, crf) - rest);
                d.stakeRound = uint32(stakeRound);
                _removeFeeUnits(o, d, rest, crf, c);
            }
            (, uint256 gross) = _position(o, d, true);
            d.feesSettled = uint128(gross);
        }
    }

    /// @dev Takes the fee units of `stake` (worth it at factor `crf`, rounded up) off the fee side: base units first,
    /// then the older late part, both to the exit record (any split of fungible stake is fair as long as each
    /// round's units are conserved), then the newer late part, which leaves without its late fees (it arrived at
    /// most a round or two ago).
    function _removeFeeUnits(address o, Delegator storage d, uint256 stake, uint256 crf, uint256 c) private {
        // The late parts are part of `feeUnits` and `removed` is at most `feeUnits`.
        unchecked {
            (uint256 baseCrf,) = _factors(o, d.baseRound);
            uint256 units = d.feeUnits;
            uint256 removed = Math.min(Math.mulDiv(stake, baseCrf, crf, Math.Rounding.Ceil), units);
            d.feeUnits = uint128(units - removed);
            uint256 newer = d.newerUnits;
            uint256 older = d.olderUnits;
            uint256 fromBase = Math.min(removed, units - newer - older);
            uint256 fromOlder = Math.min(older, removed - fromBase);
            d.olderUnits = uint128(older - fromOlder);
            d.newerUnits = uint128(newer - (removed - fromBase - fromOlder));
            _exit(o, d, fromBase + fromOlder, fromOlder, d.olderRound, c);
        }
    }

    /// @dev Moves `units` of the fee side (at its base; `late` of them arrived at `lateRound`) to the exit record:
    /// they keep earning fees credited later for rounds up to `c` (the stake was there at the round's start). Call
    /// after a claim, before changing the position.
    function _exit(address o, Delegator storage d, uint256 units, uint256 late, uint256 lateRound, uint256 c)
        private
    {
        if (units == 0) return;
        uint256 base = d.baseRound;
        uint256 left;
        uint256 leftRound;
        // A closed record is cleared here; an open one to other pools is cut short (its later fees are lost).
        _settleExit(d, c);
        uint256 old = d.exitUnits;
        if (old != 0 && d.exitDelegate == o && d.exitBase == base) {
            // Same pools: merge. The old units left at the old end (some maybe earlier), the new ones now; merged
            // parts keep the later arrival and the earlier departure (never paying more).
            units += old;
            (left, leftRound) = (d.exitLeft, d.exitLeftRound);
            uint256 oldEnd = d.exitEnd;
            if (oldEnd != c) (left, leftRound) = (old, left != 0 ? leftRound : oldEnd);
            if (d.exitLate != 0) (late, lateRound) = (late + d.exitLate, Math.max(lateRound, d.exitLateRound));
        }
        (d.exitDelegate, d.exitBase) = (o, uint32(base));
        (d.exitEnd, d.exitLateRound, d.exitLeftRound) = (uint32(c), uint32(lateRound), uint32(leftRound));
        (d.exitUnits, d.exitLate) = (uint128(units), uint128(late));
        d.exitLeft = uint128(left);
        d.exitSettled = _exitFees(d, true).toUint96();
    }

    /// @dev Pays the exit record's fees credited since the last settlement; clears it once round `exitEnd` can no
    /// longer receive fees in round `c`.
    function _settleExit(Delegator storage d, uint256 c) private {
        // Fees are only added when gross > settled; the sum is cast with a check.
        unchecked {
            if (d.exitUnits == 0) return;
            uint256 gross = _exitFees(d, false);
            uint256 settled = d.exitSettled;
            if (gross > settled) {
                d.fees = (d.fees + gross - settled).toUint128();
                d.exitSettled = uint96(gross);
            }
            if (d.exitEnd + _maxFeeBackfillRounds < c) {
                (d.exitUnits, d.exitSettled) = (0, 0);
            }
        }
    }

    /// @dev The exit record's gross fees, rounded down (up to snapshot).
    function _exitFees(Delegator storage d, bool up) private view returns (uint256 gross) {
        // Fee factors only grow with the round; the subtraction saturates.
        unchecked {
            address o = d.exitDelegate;
            (uint256 baseCrf, uint256 baseCff) = _factors(o, d.exitBase);
            (, uint256 endCff) = _factors(o, d.exitEnd);
            gross = Math.mulDiv(d.exitUnits, endCff - baseCff, baseCrf, up ? Math.Rounding.Ceil : Math.Rounding.Floor);
            // Units that arrived late did not earn before; units that left early do not earn after.
            uint256 early = _earlyFees(o, d.exitLate, d.exitLateRound, baseCrf, baseCff, up);
            uint256 leftToEnd = _earlyFees(o, d.exitLeft, d.exitEnd, baseCrf, baseCff, up);
            uint256 leftToLeaving = _earlyFees(o, d.exitLeft, d.exitLeftRound, baseCrf, baseCff, !up);
            if (leftToEnd > leftToLeaving) early += leftToEnd - leftToLeaving;
            gross = gross > early ? gross - early : 0;
        }
    }

    /// @dev Empties the position (after a claim); the bonded fee units but the newer late part go to the exit record.
    function _clearPosition(address o, Delegator storage d, uint256 c) private {
        _exit(o, d, d.feeUnits - d.newerUnits, d.olderUnits, d.olderRound, c);
        (d.bondedAmount, d.pendingAmount, d.feeUnits) = (0, 0, 0);
        (d.feesSettled, d.olderUnits, d.newerUnits) = (0, 0, 0);
    }

    function _pendingEarnings(address delegator) private view returns (uint256 stake, uint256 fees) {
        Delegator storage d = _delegators[delegator];
        address o = d.delegate;
        fees = d.fees;
        if (d.exitUnits != 0) {
            uint256 exitGross = _exitFees(d, false);
            uint256 exitSettled = d.exitSettled;
            if (exitGross > exitSettled) fees += exitGross - exitSettled;
        }
        if (o == address(0)) return (0, fees);
        uint256 gross;
        (stake, gross) = _position(o, d, false);
        uint256 settled = d.feesSettled;
        if (gross > settled) fees += gross - settled;
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
        // Shifts only.
        unchecked {
            for (uint256 i; i < POOL_ROUND_SLOTS; ++i) {
                uint256 r = uint32(packed >> (32 * i));
                if (r == 0) return 0;
                if (r <= round) return r;
            }
            return 0;
        }
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
        // Round numbers are below 2^32 and r >= 1. Fee factors: each credit adds amount * CRF / stake with both factors
        // below 2^128, and the amounts are real ETH (below 2^87 wei all together), so they stay far below 2^256.
        unchecked {
            // Stake at the start of each round r..c, from the top: a round without a pool had no event, so its stake is
            // that of the next round (or the current stake above the latest pool). It is written into the pools still
            // to materialise, whose factors stay zero (unmaterialised) until the pass below.
            uint256 stake = os.totalStake;
            for (uint256 k = c + 1; k > r;) {
                EarningsPool storage pool = _pools[o][--k];
                if (pool.cumulativeRewardFactor != 0) stake = pool.totalStake;
                else pool.totalStake = uint128(stake);
            }
            if (stake == 0) return 0;
            uint256 crf = _pools[o][r].cumulativeRewardFactor;
            uint256 cff;
            // CRF at the start of round r: the pool's own factor until r's reward, else the previous pool's (kept in the
            // orchestrator's record for the latest reward round). The previous fee factor is only needed when pool r is
            // still to materialise.
            uint256 lastReward = os.lastRewardRound;
            if (crf != 0 && lastReward == r) {
                crf = os.rewardRoundStartCrf;
            } else if (crf == 0 || lastReward > r) {
                uint256 prevCff;
                (crf, prevCff) = _factors(o, _latestPoolRound(os.poolRounds, r - 1));
                if (_pools[o][r].cumulativeRewardFactor == 0) cff = prevCff;
            }
            // Per unit of stake measured at a pool: fees * CRF_{r-1} / stake_r.
            uint256 delta = Math.mulDiv(amount, crf, stake);
            if (delta == 0) return 0;
            bool materialised;
            for (uint256 k = r; k <= c; ++k) {
                EarningsPool storage pool = _pools[o][k];
                uint256 poolCrf = pool.cumulativeRewardFactor;
                if (poolCrf == 0) {
                    // A copy of the previous round's factors, which already carry `delta` after round r.
                    pool.cumulativeRewardFactor = uint128(crf);
                    if (k == r) cff += delta;
                    materialised = true;
                } else {
                    (crf, cff) = (poolCrf, pool.cumulativeFeeFactor + delta);
                }
                pool.cumulativeFeeFactor = cff;
            }
            if (materialised) os.poolRounds = _withPoolRounds(os.poolRounds, r, c);
            return amount;
        }
    }

    /// @dev `packed` with every round of `r..c` (now all materialised) first, then the older remembered rounds.
    function _withPoolRounds(uint256 packed, uint256 r, uint256 c) private pure returns (uint256 newPacked) {
        // Round numbers and slot counts are small.
        unchecked {
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
        // The list total is the sum of its keys (stakes < 2^128), so no step can wrap.
        unchecked {
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
                os.activationRound = uint32(c + 1);
                os.deactivationRound = NEVER;
                emit OrchestratorActivated(o, c + 1);
            }
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
        // A lock's shares are part of its book's total.
        unchecked {
            Lock memory lock = _locks[account][lockId];
            withdrawRound = lock.withdrawRound;
            if (withdrawRound == 0) revert InvalidUnbondingLock(lockId);
            LockBook storage book = _lockBooks[account];
            amount = _lockValue(book, lock.shares, lock.epoch);
            if (lock.epoch == book.epoch) book.totalShares -= lock.shares;
            delete _locks[account][lockId];
        }
    }

    function _lockValue(LockBook storage book, uint256 shares, uint256 epoch) private view returns (uint256) {
        // scaleLoss <= PRECISE and shares < 2^128.
        unchecked {
            if (epoch != book.epoch) return 0;
            uint256 scaleLoss = book.scaleLoss;
            return scaleLoss == 0 ? shares : shares * (PRECISE - scaleLoss) / PRECISE;
        }
    }

    /// @dev Shrinks all of `account`'s locks by `fraction` ppm and returns the LPT taken.
    function _slashLocks(address account, uint256 fraction) private returns (uint256 penalty) {
        // scale <= PRECISE, fraction <= PPM and shares < 2^128: every product fits.
        unchecked {
            LockBook storage book = _lockBooks[account];
            uint256 shares = book.totalShares;
            if (shares == 0 || fraction == 0) return 0;
            uint256 scale = PRECISE - book.scaleLoss;
            uint256 before = shares * scale / PRECISE;
            uint256 newScale = scale * (PPM - fraction) / PPM;
            // A full slash voids every lock by starting a new epoch, without touching each one. Below a billionth of their amount the locks are as good as gone; voiding them keeps the shares of new
            // locks (amount / scale) within uint128.
            if (newScale < PRECISE / 1e9) {
                book.epoch += 1;
                book.totalShares = 0;
                book.scaleLoss = 0;
                return before;
            }
            book.scaleLoss = uint96(PRECISE - newScale);
            penalty = before - shares * newScale / PRECISE;
        }
    }
}
