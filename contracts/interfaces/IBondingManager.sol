// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title IBondingManager
/// @notice Staking: orchestrator registration and cuts, delegation (bond / unbond / rebond / withdraw), the active
/// set (a sorted list with insertion hints), inflation rewards, fees, and slashing.
/// @dev Units: cuts, shares and fractions in ppm (1_000_000); cumulative factors scaled by PRECISE (1e27).
///
/// Earnings use per-(orchestrator, round) pools with a cumulative reward factor (CRF, starts at PRECISE) and a
/// cumulative fee factor (CFF). Claims are O(1) whatever the number of rounds: a stake `s` measured at the end of
/// round `a` is worth `s * CRF_b / CRF_a` at the end of round `b` and has earned `s * (CFF_b - CFF_a) / CRF_a` in
/// fees. Stake bonded in round `r` earns from round `r + 1`. Rewards compound without claims (a delegator's stake
/// is always its stake "now"); a claim moves the fees earned so far into the delegator's claimed fees and never
/// forfeits anything: fees credited later — also for earlier ticket rounds — still reach the stake that was
/// bonded in those rounds. Stake that leaves (unbond, move, slash) earns nothing more, not even fees credited
/// later for rounds it was in. All rounding is down.
///
/// Every stake-changing call first claims the caller's (and only the caller's) earnings and requires the
/// current round to be initialised.
interface IBondingManager {
    // -----------------------------------------------------------------------------------------------------------
    // Types
    // -----------------------------------------------------------------------------------------------------------

    /// @notice A delegator as returned by `getDelegator`.
    /// @param bondedAmount Stake now, rewards included (the same as `pendingStake`).
    /// @param fees Claimed fees (wei) not yet withdrawn (`pendingFees` adds fees earned since).
    /// @param delegate The orchestrator the stake is bonded to (zero when unbonded).
    /// @param startRound The first round in which the stake most recently bonded earns.
    /// @param lastClaimRound One before the round of the last claim (its earnings are settled through that round).
    /// @param nextUnbondingLockId The id the next unbonding lock will get.
    struct DelegatorInfo {
        uint256 bondedAmount;
        uint256 fees;
        address delegate;
        uint256 startRound;
        uint256 lastClaimRound;
        uint256 nextUnbondingLockId;
    }

    /// @notice An orchestrator as returned by `getOrchestrator`.
    /// @param registered Whether it is a registered orchestrator.
    /// @param rewardCut Reward cut (ppm kept by the orchestrator) in force in the current round.
    /// @param feeShare Fee share (ppm passed to delegators) in force in the current round.
    /// @param pendingRewardCut The latest reward cut set; in force from `pendingCutsRound`.
    /// @param pendingFeeShare The latest fee share set; in force from `pendingCutsRound`.
    /// @param pendingCutsRound The round from which the pending cuts apply.
    /// @param lastRewardRound The last round in which it called `reward`.
    /// @param activationRound The round from which it is active (0 when never activated).
    /// @param deactivationRound The round from which it is no longer active (type(uint64).max while staying).
    /// @param totalStake Its total stake: self-bond plus delegated stake plus rewards.
    struct OrchestratorInfo {
        bool registered;
        uint256 rewardCut;
        uint256 feeShare;
        uint256 pendingRewardCut;
        uint256 pendingFeeShare;
        uint256 pendingCutsRound;
        uint256 lastRewardRound;
        uint256 activationRound;
        uint256 deactivationRound;
        uint256 totalStake;
    }

    // -----------------------------------------------------------------------------------------------------------
    // Errors
    // -----------------------------------------------------------------------------------------------------------

    /// @notice Thrown when an address argument is the zero address.
    error ZeroAddress();
    /// @notice Thrown when a RoundsManager-only function is called by another account.
    error OnlyRoundsManager(address caller);
    /// @notice Thrown when a TicketBroker-only function is called by another account.
    error OnlyTicketBroker(address caller);
    /// @notice Thrown when `slash` is called by an account that is not a registered verifier.
    error NotVerifier(address caller);
    /// @notice Thrown when a stake-changing call is made before the current round is initialised.
    error CurrentRoundNotInitialized(uint256 round);
    /// @notice Thrown when registering without being bonded to oneself with stake > 0.
    error NotSelfBonded(address account);
    /// @notice Thrown when a reward cut or fee share exceeds 1_000_000 ppm.
    error InvalidCut(uint256 cut);
    /// @notice Thrown when cuts are changed during the round lock window of `round`.
    error CutsLocked(uint256 round);
    /// @notice Thrown when bonding to an account that is neither a registered orchestrator nor the caller.
    error NotRegisteredOrchestrator(address account);
    /// @notice Thrown when a registered orchestrator tries to move its self-stake to another delegate.
    error OrchestratorCannotMove(address orchestrator);
    /// @notice Thrown when an amount of zero is given where it would do nothing.
    error ZeroAmount();
    /// @notice Thrown when unbonding more than the bonded stake.
    error InsufficientBond(uint256 requested, uint256 bonded);
    /// @notice Thrown when the caller has no delegate but the call needs one.
    error NotBonded(address delegator);
    /// @notice Thrown by `rebondFromUnbonded` when the caller is still bonded to `delegate`.
    error AlreadyBonded(address delegator, address delegate);
    /// @notice Thrown for an unbonding lock id that does not exist or was already used.
    error InvalidUnbondingLock(uint256 unbondingLockId);
    /// @notice Thrown when withdrawing a lock before its `withdrawRound`.
    error UnbondingLockNotWithdrawable(uint256 unbondingLockId, uint256 withdrawRound);
    /// @notice Thrown when withdrawing more fees than the caller has.
    error InsufficientFees(uint256 requested, uint256 available);
    /// @notice Thrown when `reward` is called by an orchestrator not active in the current round.
    error NotActiveOrchestrator(address orchestrator);
    /// @notice Thrown when `reward` is called twice in `round`.
    error RewardAlreadyCalled(uint256 round);
    /// @notice Thrown when fees are credited for a round older than `maxFeeBackfillRounds` before the current one.
    error FeeRoundTooOld(uint256 round, uint256 currentRound);
    /// @notice Thrown when fees are credited for a round after the current one.
    error FeeRoundInFuture(uint256 round, uint256 currentRound);
    /// @notice Thrown when a slash fraction exceeds 1_000_000 ppm.
    error InvalidFraction(uint256 fraction);
    /// @notice Thrown when the finder's fee exceeds 500_000 ppm (50 %).
    error InvalidFinderFee(uint256 finderFee);
    /// @notice Thrown when an unbonding period of zero rounds is given.
    error InvalidUnbondingPeriod(uint256 unbondingPeriod);
    /// @notice Thrown when the maximum active set size is zero or below the current pool size.
    error InvalidMaxActiveOrchestrators(uint256 maxActiveOrchestrators, uint256 poolSize);
    /// @notice Thrown when the fee backfill window exceeds `max` rounds.
    error InvalidMaxFeeBackfillRounds(uint256 maxFeeBackfillRounds, uint256 max);

    // -----------------------------------------------------------------------------------------------------------
    // Events
    // -----------------------------------------------------------------------------------------------------------

    /// @notice Emitted when an orchestrator registers or changes its cuts; they apply from `effectiveRound`.
    event OrchestratorUpdate(address indexed orchestrator, uint256 rewardCut, uint256 feeShare, uint256 effectiveRound);
    /// @notice Emitted when an orchestrator joins the active set; it is active from `activationRound`.
    event OrchestratorActivated(address indexed orchestrator, uint256 activationRound);
    /// @notice Emitted when an orchestrator leaves the active set; it is inactive from `deactivationRound`.
    event OrchestratorDeactivated(address indexed orchestrator, uint256 deactivationRound);
    /// @notice Emitted when an orchestrator stops being registered (full unbond or full slash).
    event OrchestratorResigned(address indexed orchestrator, uint256 round);
    /// @notice Emitted on bond: `additionalAmount` new LPT; `bondedAmount` the delegator's stake afterwards.
    event Bond(
        address indexed newDelegate,
        address indexed oldDelegate,
        address indexed delegator,
        uint256 additionalAmount,
        uint256 bondedAmount
    );
    /// @notice Emitted on unbond: `amount` locked under `unbondingLockId` until `withdrawRound`.
    event Unbond(
        address indexed delegator,
        address indexed delegate,
        uint256 unbondingLockId,
        uint256 amount,
        uint256 withdrawRound
    );
    /// @notice Emitted when a lock's `amount` is bonded again to `delegate`.
    event Rebond(address indexed delegator, address indexed delegate, uint256 unbondingLockId, uint256 amount);
    /// @notice Emitted when a lock is withdrawn.
    event WithdrawStake(address indexed delegator, uint256 unbondingLockId, uint256 amount, uint256 withdrawRound);
    /// @notice Emitted when fees are paid out to `recipient`.
    event WithdrawFees(address indexed delegator, address indexed recipient, uint256 amount);
    /// @notice Emitted when a delegator's earnings are claimed in round `endRound + 1`: `stake` is its stake then
    /// (rewards included), `fees` the fees moved into its claimed fees; `startRound` is one after the previous claim.
    event EarningsClaimed(
        address indexed delegate,
        address indexed delegator,
        uint256 stake,
        uint256 fees,
        uint256 startRound,
        uint256 endRound
    );
    /// @notice Emitted when an orchestrator calls reward and `amount` LPT is minted for it and its delegators.
    event Reward(address indexed orchestrator, uint256 amount);
    /// @notice Emitted when `fees` wei from tickets created in `round` are credited to an orchestrator.
    event FeesCredited(address indexed orchestrator, uint256 fees, uint256 round);
    /// @notice Emitted when an orchestrator is slashed by `penalty` LPT, of which `finderReward` goes to `finder`.
    event Slash(address indexed orchestrator, address indexed finder, uint256 penalty, uint256 finderReward);
    /// @notice Emitted when a round is initialised with `totalActiveStake` as its active stake.
    event CurrentRoundTotalActiveStakeSet(uint256 indexed round, uint256 totalActiveStake);
    /// @notice Emitted when the unbonding period (rounds) is set.
    event UnbondingPeriodSet(uint256 unbondingPeriod);
    /// @notice Emitted when the minimum stake for the active set is set.
    event MinimumStakeSet(uint256 minimumStake);
    /// @notice Emitted when the maximum active set size is set.
    event MaxActiveOrchestratorsSet(uint256 maxActiveOrchestrators);
    /// @notice Emitted when the finder's fee (ppm of a penalty) is set.
    event FinderFeeSet(uint256 finderFee);
    /// @notice Emitted when the fee backfill window (rounds) is set.
    event MaxFeeBackfillRoundsSet(uint256 maxFeeBackfillRounds);
    /// @notice Emitted when the TicketBroker is wired.
    event TicketBrokerSet(address indexed ticketBroker);
    /// @notice Emitted when a verifier is enabled or disabled.
    event VerifierSet(address indexed verifier, bool enabled);
    /// @notice Emitted when the RoundsManager is wired.
    event RoundsManagerSet(address indexed roundsManager);
    /// @notice Emitted when the Minter is wired.
    event MinterSet(address indexed minter);

    // -----------------------------------------------------------------------------------------------------------
    // Orchestrators
    // -----------------------------------------------------------------------------------------------------------

    /// @notice Registers the caller as an orchestrator, or changes its cuts. The caller must be bonded to itself with
    /// stake > 0 (`NotSelfBonded`); cuts ≤ 1_000_000 (`InvalidCut`); not in the round lock window (`CutsLocked`).
    /// The first registration applies at once; later changes (including re-registration after resigning) apply
    /// from the next round. Joins the active set (from the next round) if its stake qualifies, walking the list
    /// from the head to find its position.
    /// @param rewardCut Ppm of each reward the orchestrator keeps.
    /// @param feeShare Ppm of each fee passed to delegators.
    function registerOrchestrator(uint256 rewardCut, uint256 feeShare) external;

    /// @notice `registerOrchestrator` with a position hint `(prev, next)` for the active set list.
    function registerOrchestratorWithHint(uint256 rewardCut, uint256 feeShare, address prev, address next)
        external;

    // -----------------------------------------------------------------------------------------------------------
    // Bonding
    // -----------------------------------------------------------------------------------------------------------

    /// @notice Bonds `amount` LPT (transferred from the caller) to `to`, which must be a registered orchestrator or
    /// the caller itself (`NotRegisteredOrchestrator`). Bonding to another delegate moves the caller's whole stake
    /// (a registered orchestrator cannot move its self-stake: `OrchestratorCannotMove`). New stake earns from the
    /// next round. `amount` may be 0 only to move stake (`ZeroAmount`). Emits `Bond`.
    function bond(uint256 amount, address to) external;

    /// @notice `bond` with list position hints for the old delegate (when moving) and the new one.
    function bondWithHint(
        uint256 amount,
        address to,
        address oldDelegateNewPosPrev,
        address oldDelegateNewPosNext,
        address currDelegateNewPosPrev,
        address currDelegateNewPosNext
    ) external;

    /// @notice Unbonds `amount` (> 0, ≤ stake) into a new lock withdrawable at `currentRound + unbondingPeriod`.
    /// Unbonding everything clears the delegate; an orchestrator unbonding everything resigns. Emits `Unbond`.
    function unbond(uint256 amount) external;

    /// @notice `unbond` with a list position hint for the delegate's new stake.
    function unbondWithHint(uint256 amount, address newPosPrev, address newPosNext) external;

    /// @notice Bonds the lock `unbondingLockId` again to the caller's current delegate (`NotBonded` without one).
    function rebond(uint256 unbondingLockId) external;

    /// @notice `rebond` with a list position hint for the delegate's new stake.
    function rebondWithHint(uint256 unbondingLockId, address newPosPrev, address newPosNext) external;

    /// @notice Bonds the lock `unbondingLockId` to `to` when the caller has no delegate (`AlreadyBonded`).
    function rebondFromUnbonded(address to, uint256 unbondingLockId) external;

    /// @notice `rebondFromUnbonded` with a list position hint for `to`'s new stake.
    function rebondFromUnbondedWithHint(address to, uint256 unbondingLockId, address newPosPrev, address newPosNext)
        external;

    /// @notice Withdraws the LPT of lock `unbondingLockId` once its withdraw round is reached
    /// (`UnbondingLockNotWithdrawable`; unknown or used ids: `InvalidUnbondingLock`). Emits `WithdrawStake`.
    function withdrawStake(uint256 unbondingLockId) external;

    /// @notice Claims the caller's earnings, then pays `amount` wei of its fees to `recipient` from the Minter
    /// (`InsufficientFees`). State is updated before the ETH is sent. Emits `WithdrawFees`.
    function withdrawFees(address payable recipient, uint256 amount) external;

    /// @notice Claims the caller's earnings: moves the fees earned so far into its claimed fees (stake compounds
    /// without claims). Emits `EarningsClaimed`.
    function claimEarnings() external;

    // -----------------------------------------------------------------------------------------------------------
    // Rewards, fees, slashing
    // -----------------------------------------------------------------------------------------------------------

    /// @notice Mints the caller's share of the round's rewards, `mintable * stakeAtRoundStart /
    /// currentRoundTotalActiveStake`; the reward cut of the round goes to the orchestrator (bonded from the next
    /// round), the rest raises the round's cumulative reward factor. Active orchestrators only
    /// (`NotActiveOrchestrator`), once per round (`RewardAlreadyCalled`). Emits `Reward`.
    function reward() external;

    /// @notice `reward` with a list position hint for the orchestrator's new stake.
    function rewardWithHint(address newPosPrev, address newPosNext) external;

    /// @notice Credits `fees` wei from tickets created in `round` to `orchestrator`, split by the fee share in force
    /// in `round`: the orchestrator's part to its own fees, the delegators' part to the pool of `round` (by that
    /// round's stake) and carried into every later pool. `round` ≤ current (`FeeRoundInFuture`) and ≥ current −
    /// `maxFeeBackfillRounds` (`FeeRoundTooOld`); `fees` < 2^128. TicketBroker only (`OnlyTicketBroker`), which sends
    /// the ETH to the Minter. Returns the current round and whether `orchestrator` is active in it: a redemption
    /// needs both and gets them from this one call (it reverts when the recipient is not active). Emits
    /// `FeesCredited`.
    function updateOrchestratorWithFees(address orchestrator, uint256 fees, uint256 round)
        external
        returns (uint256 currentRound, bool active);

    /// @notice Slashes `fraction` ppm (`InvalidFraction`) of `orchestrator`'s self-bond and of its unbonding locks;
    /// `finderFee` ppm of the penalty goes to `finder` (none when zero), the rest is burned. The orchestrator
    /// leaves the active set at once; fully slashed, it is no longer registered. Verifiers only (`NotVerifier`).
    /// Emits `Slash`.
    function slash(address orchestrator, uint256 fraction, address finder) external;

    /// @notice Copies `nextRoundTotalActiveStake` into `currentRoundTotalActiveStake`. RoundsManager only, when it
    /// initialises a round.
    function setCurrentRoundTotalActiveStake() external;

    // -----------------------------------------------------------------------------------------------------------
    // Owner
    // -----------------------------------------------------------------------------------------------------------

    /// @notice Sets the unbonding period in rounds (> 0). Owner only.
    function setUnbondingPeriod(uint256 newUnbondingPeriod) external;

    /// @notice Sets the minimum stake to join the active set. Owner only. Applies to joins and stake changes
    /// from now on.
    function setMinimumStake(uint256 newMinimumStake) external;

    /// @notice Sets the maximum active set size (> 0, ≥ the current size). Owner only.
    function setMaxActiveOrchestrators(uint256 newMaxActiveOrchestrators) external;

    /// @notice Sets the finder's fee, ppm of a penalty (≤ 500_000). Owner only.
    function setFinderFee(uint256 newFinderFee) external;

    /// @notice Sets how many rounds back fees may be credited (≤ `MAX_FEE_BACKFILL_ROUNDS`). Owner only.
    function setMaxFeeBackfillRounds(uint256 newMaxFeeBackfillRounds) external;

    /// @notice Wires the TicketBroker. Owner only.
    function setTicketBroker(address newTicketBroker) external;

    /// @notice Enables or disables `verifier` as a slasher. Owner only.
    function setVerifier(address verifier, bool enabled) external;

    /// @notice Wires the RoundsManager. Owner only.
    function setRoundsManager(address newRoundsManager) external;

    /// @notice Wires the Minter. Owner only.
    function setMinter(address newMinter) external;

    // -----------------------------------------------------------------------------------------------------------
    // Views
    // -----------------------------------------------------------------------------------------------------------

    /// @notice The LPT contract.
    function token() external view returns (address);

    /// @notice The Minter.
    function minter() external view returns (address);

    /// @notice The RoundsManager.
    function roundsManager() external view returns (address);

    /// @notice The TicketBroker allowed to credit fees.
    function ticketBroker() external view returns (address);

    /// @notice Whether `account` may slash.
    function isVerifier(address account) external view returns (bool);

    /// @notice Unbonding period in rounds.
    function unbondingPeriod() external view returns (uint256);

    /// @notice Minimum total stake to be in the active set.
    function minimumStake() external view returns (uint256);

    /// @notice Maximum active set size (default 1000).
    function maxActiveOrchestrators() external view returns (uint256);

    /// @notice Finder's fee, ppm of a slash penalty.
    function finderFee() external view returns (uint256);

    /// @notice How many rounds back fees may be credited (default 2).
    function maxFeeBackfillRounds() external view returns (uint256);

    /// @notice Upper bound of `maxFeeBackfillRounds` (6).
    function MAX_FEE_BACKFILL_ROUNDS() external view returns (uint256);

    /// @notice The delegator record of `delegator`.
    function getDelegator(address delegator) external view returns (DelegatorInfo memory);

    /// @notice The orchestrator record of `orchestrator`.
    function getOrchestrator(address orchestrator) external view returns (OrchestratorInfo memory);

    /// @notice The unbonding lock `unbondingLockId` of `delegator` (amount after any slash; zeros when none).
    function getUnbondingLock(address delegator, uint256 unbondingLockId)
        external
        view
        returns (uint256 amount, uint256 withdrawRound);

    /// @notice The earnings pool of `orchestrator` for `round`. Zeros for a round in which nothing touched the
    /// orchestrator (its factors are then those of the latest earlier pool).
    function getEarningsPool(address orchestrator, uint256 round)
        external
        view
        returns (uint256 totalStake, uint256 cumulativeRewardFactor, uint256 cumulativeFeeFactor);

    /// @notice `delegator`'s stake including rewards credited so far (claimed or not).
    function pendingStake(address delegator) external view returns (uint256);

    /// @notice `delegator`'s fees including fees credited so far (claimed or not), not yet withdrawn.
    function pendingFees(address delegator) external view returns (uint256);

    /// @notice The reward cut and fee share of `orchestrator` in force in `round` (zeros before it registered).
    function cutsForRound(address orchestrator, uint256 round)
        external
        view
        returns (uint256 rewardCut, uint256 feeShare);

    /// @notice Whether `orchestrator` is active in the current round (the last initialised one: until a new round is
    /// initialised, the previous round's active set stays in force).
    function isActiveOrchestrator(address orchestrator) external view returns (bool);

    /// @notice Whether `orchestrator` is registered.
    function isRegisteredOrchestrator(address orchestrator) external view returns (bool);

    /// @notice `orchestrator`'s total stake (self-bond + delegated + rewards).
    function orchestratorTotalStake(address orchestrator) external view returns (uint256);

    /// @notice Total LPT bonded (all delegators, not counting unbonding locks).
    function getTotalBonded() external view returns (uint256);

    /// @notice The active stake snapshot of the current round (taken when it was initialised).
    function currentRoundTotalActiveStake() external view returns (uint256);

    /// @notice The number of orchestrators active in the current round, snapshotted when it was initialised (the
    /// TicketBroker splits reserves by it, so a set changing mid-round cannot over-allocate a reserve).
    function currentRoundActiveCount() external view returns (uint256);

    /// @notice The active set's total stake now (it becomes the next round's active stake).
    function nextRoundTotalActiveStake() external view returns (uint256);

    /// @notice The member with the most stake (zero address when empty).
    function getFirstOrchestratorInPool() external view returns (address);

    /// @notice The member with the least stake (zero address when empty).
    function getLastOrchestratorInPool() external view returns (address);

    /// @notice The member after `orchestrator` (less or equal stake; zero address at the end).
    function getNextOrchestratorInPool(address orchestrator) external view returns (address);

    /// @notice The member before `orchestrator` (more or equal stake; zero address at the start).
    function getPrevOrchestratorInPool(address orchestrator) external view returns (address);

    /// @notice The number of members of the active set list.
    function getOrchestratorPoolSize() external view returns (uint256);

    /// @notice Whether `orchestrator` is in the active set list (active now or from the next round).
    function isInPool(address orchestrator) external view returns (bool);
}
