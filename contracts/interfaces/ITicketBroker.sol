// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title ITicketBroker
/// @notice Probabilistic micropayments. A broadcaster ("sender") holds ETH here as a **deposit**, which pays its
/// winning tickets, and a **reserve**, which backs the deposit: when the deposit falls short, each orchestrator active
/// in the current round may claim up to `reserve-at-round-start / activeCount` of the reserve in that round, where
/// `activeCount` is the active-set size snapshotted when the round was initialised (THREATS.md 8). A ticket is
/// EIP-712 typed data signed by the sender (domain `"Streamflow TicketBroker"`, version `"1"`, chain id, this
/// contract); it wins when `uint256(keccak256(abi.encodePacked(sig, recipientRand))) < winProb`. A winning ticket
/// pays `faceValue` in full or not at all, at most once; its value is credited to the recipient's earnings for the
/// ticket's creation round and sent to the Minter.
/// @dev Funds are withdrawn through a time lock (`unlock`, then `withdraw` after `unlockPeriod` rounds) that is
/// always longer than a ticket's validity, so every ticket a sender signed before unlocking can still be cashed
/// (THREATS.md 7). Funding, by the sender or anyone on its behalf, never cancels an unlock (THREATS.md 6).
interface ITicketBroker {
    // -----------------------------------------------------------------------------------------------------------
    // Types
    // -----------------------------------------------------------------------------------------------------------

    /// @notice A probabilistic micropayment ticket (the EIP-712 `Ticket` struct, fields in this order).
    /// @param recipient The orchestrator paid when the ticket wins.
    /// @param sender The broadcaster whose funds pay it; the signer.
    /// @param faceValue Wei paid when it wins.
    /// @param winProb Win probability as a fraction of 2^256.
    /// @param senderNonce Distinguishes tickets sharing one `recipientRandHash`.
    /// @param recipientRandHash `keccak256(abi.encodePacked(recipientRand))`, the recipient's commitment.
    /// @param creationRound The round the ticket was created in.
    /// @param creationRoundBlockHash The block hash the RoundsManager recorded for `creationRound`.
    struct Ticket {
        address recipient;
        address sender;
        uint256 faceValue;
        uint256 winProb;
        uint256 senderNonce;
        bytes32 recipientRandHash;
        uint256 creationRound;
        bytes32 creationRoundBlockHash;
    }

    // -----------------------------------------------------------------------------------------------------------
    // Errors
    // -----------------------------------------------------------------------------------------------------------

    /// @notice Thrown when an address argument is the zero address.
    error ZeroAddress();
    /// @notice Thrown by `fundDepositAndReserve(For)` when `msg.value` is not `depositAmount + reserveAmount`.
    error InvalidFundingAmount(uint256 value, uint256 expected);
    /// @notice Thrown by `unlock` when an unlock is already running (until `withdrawRound`).
    error UnlockInProgress(uint256 withdrawRound);
    /// @notice Thrown by `unlock` when the caller has neither deposit nor reserve.
    error NothingToUnlock();
    /// @notice Thrown by `cancelUnlock` and `withdraw` when the caller has not unlocked.
    error NotUnlocking();
    /// @notice Thrown by `withdraw` before `withdrawRound`.
    error UnlockNotDue(uint256 withdrawRound, uint256 currentRound);
    /// @notice Thrown when an ETH transfer to `to` fails.
    error EthTransferFailed(address to, uint256 amount);
    /// @notice Thrown when the unlock period would not exceed the ticket validity (THREATS.md 7).
    error InvalidUnlockPeriod(uint256 unlockPeriod, uint256 ticketValidityRounds);
    /// @notice Thrown when the ticket validity exceeds the rounds for which the BondingManager accepts fees.
    error InvalidTicketValidityRounds(uint256 ticketValidityRounds, uint256 maxFeeBackfillRounds);
    /// @notice Thrown by `batchRedeemWinningTickets` when its arrays differ in length.
    error LengthMismatch(uint256 tickets, uint256 sigs, uint256 recipientRands);
    /// @notice The revealed `recipientRand` does not hash to the ticket's `recipientRandHash`.
    error InvalidRecipientRand(bytes32 recipientRandHash);
    /// @notice The recipient is the zero address or not an active orchestrator in the current round.
    error RecipientNotActive(address recipient);
    /// @notice The ticket is from a round after the current one, or more than `ticketValidityRounds` before it.
    error TicketExpired(uint256 creationRound, uint256 currentRound);
    /// @notice `creationRoundBlockHash` is zero or not the block hash recorded for `creationRound`.
    error InvalidCreationRoundBlockHash(uint256 creationRound, bytes32 creationRoundBlockHash);
    /// @notice The ticket has already been redeemed (THREATS.md 1).
    error TicketUsed(bytes32 ticketHash);
    /// @notice The signature is not a 65-byte, low-s, v ∈ {27, 28} signature by `ticket.sender` (THREATS.md 2).
    error InvalidSignature();
    /// @notice The ticket did not win the lottery.
    error TicketDidNotWin();
    /// @notice The sender's deposit plus the recipient's reserve allocation cannot pay `faceValue` in full.
    error InsufficientFunds(uint256 faceValue, uint256 available);

    // -----------------------------------------------------------------------------------------------------------
    // Events
    // -----------------------------------------------------------------------------------------------------------

    /// @notice Emitted when `funder` adds `amount` wei to `sender`'s deposit.
    event DepositFunded(address indexed sender, address indexed funder, uint256 amount);
    /// @notice Emitted when `funder` adds `amount` wei to `sender`'s reserve.
    event ReserveFunded(address indexed sender, address indexed funder, uint256 amount);
    /// @notice Emitted when `sender` unlocks in `startRound`; it may withdraw from `withdrawRound`.
    event Unlock(address indexed sender, uint256 startRound, uint256 withdrawRound);
    /// @notice Emitted when `sender` cancels its unlock.
    event UnlockCancelled(address indexed sender);
    /// @notice Emitted when `sender` withdraws its whole deposit and reserve.
    event Withdrawal(address indexed sender, uint256 deposit, uint256 reserve);
    /// @notice Emitted when a winning ticket pays `faceValue` wei to `recipient`'s earnings for `creationRound`:
    /// `fromReserve` wei of it from `sender`'s reserve (claimed by `recipient` in the current round, see
    /// `claimedReserve`), the rest from its deposit.
    event WinningTicketRedeemed(
        address indexed sender,
        address indexed recipient,
        bytes32 ticketHash,
        uint256 faceValue,
        uint256 creationRound,
        uint256 fromReserve
    );
    /// @notice Emitted by `batchRedeemWinningTickets` for a ticket it did not pay; `errorSelector` is the selector
    /// of the error `redeemWinningTicket` would have reverted with.
    event TicketRedemptionFailed(bytes32 indexed ticketHash, bytes4 errorSelector);
    /// @notice Emitted when the unlock period (rounds) is set.
    event UnlockPeriodSet(uint256 unlockPeriod);
    /// @notice Emitted when the ticket validity (rounds) is set.
    event TicketValidityRoundsSet(uint256 ticketValidityRounds);

    // -----------------------------------------------------------------------------------------------------------
    // Funding
    // -----------------------------------------------------------------------------------------------------------

    /// @notice Adds `msg.value` to the caller's deposit. Never cancels an unlock. Emits `DepositFunded`.
    function fundDeposit() external payable;

    /// @notice Adds `msg.value` to the caller's reserve. Never cancels an unlock. Emits `ReserveFunded`.
    function fundReserve() external payable;

    /// @notice Adds `depositAmount` to the caller's deposit and `reserveAmount` to its reserve; `msg.value` must be
    /// their sum (`InvalidFundingAmount`). Never cancels an unlock. Emits `DepositFunded` and `ReserveFunded`.
    function fundDepositAndReserve(uint256 depositAmount, uint256 reserveAmount) external payable;

    /// @notice `fundDeposit` on behalf of `sender` (`ZeroAddress` for the zero address). Never cancels `sender`'s
    /// unlock (THREATS.md 6).
    function fundDepositFor(address sender) external payable;

    /// @notice `fundReserve` on behalf of `sender` (`ZeroAddress` for the zero address). Never cancels `sender`'s
    /// unlock.
    function fundReserveFor(address sender) external payable;

    /// @notice `fundDepositAndReserve` on behalf of `sender` (`ZeroAddress` for the zero address). Never cancels
    /// `sender`'s unlock.
    function fundDepositAndReserveFor(address sender, uint256 depositAmount, uint256 reserveAmount) external payable;

    // -----------------------------------------------------------------------------------------------------------
    // Unlock and withdraw
    // -----------------------------------------------------------------------------------------------------------

    /// @notice Starts the caller's time lock: it may withdraw from `currentRound + unlockPeriod`. Its tickets stay
    /// payable meanwhile. `UnlockInProgress` while one runs; `NothingToUnlock` with no funds. Emits `Unlock`.
    function unlock() external;

    /// @notice Cancels the caller's unlock (`NotUnlocking` without one). Emits `UnlockCancelled`.
    function cancelUnlock() external;

    /// @notice Pays the caller's whole deposit and reserve to it once its unlock is due (`NotUnlocking`,
    /// `UnlockNotDue`) and clears the unlock. State is cleared before the ETH is sent (THREATS.md 15).
    /// Emits `Withdrawal`.
    function withdraw() external;

    // -----------------------------------------------------------------------------------------------------------
    // Redemption
    // -----------------------------------------------------------------------------------------------------------

    /// @notice Redeems a winning ticket. Checks, in this order: the commitment (`InvalidRecipientRand`), the
    /// recipient is active in the current round (`RecipientNotActive`), the ticket is neither from a future round nor
    /// older than `ticketValidityRounds` (`TicketExpired`), its block hash is the one recorded for its round
    /// (`InvalidCreationRoundBlockHash`), it is unused (`TicketUsed`), the signature (`InvalidSignature`), it won
    /// (`TicketDidNotWin`). Pays `faceValue` from the sender's deposit and any shortfall from the recipient's
    /// allocation of the reserve for the current round; if that cannot pay in full it reverts
    /// (`InsufficientFunds`) and the ticket stays unused. Then marks the ticket used, credits `faceValue` to the
    /// recipient's fees for the ticket's creation round (`IBondingManager.updateOrchestratorWithFees`) and sends the
    /// ETH to the Minter. Anyone may call it. Emits `WinningTicketRedeemed`.
    /// @dev For gas, a non-zero face value is credited first: the same call answers the current round and the
    /// recipient's activity (the checks above then run on its answer, and any failure reverts the credit with the
    /// rest). When the credit refuses, the ticket's own error (in the order above, funds included) is reported first,
    /// else the BondingManager's (`CurrentRoundNotInitialized` before the current round is initialised,
    /// `FeeRoundTooOld` if its `maxFeeBackfillRounds` was lowered below `ticketValidityRounds`).
    /// @param ticket The ticket.
    /// @param sig The sender's 65-byte signature of `getTicketHash(ticket)`.
    /// @param recipientRand The recipient's secret behind `ticket.recipientRandHash`.
    function redeemWinningTicket(Ticket calldata ticket, bytes calldata sig, uint256 recipientRand) external;

    /// @notice Redeems many tickets in one transaction, each exactly as `redeemWinningTicket` would, in order; a
    /// ticket that fails does not revert the batch (it emits `TicketRedemptionFailed` with the error's selector).
    /// Round data, activity checks, fee credits (one per recipient and creation round) and the ETH transfer to the
    /// Minter are shared. Arrays of equal length (`LengthMismatch`).
    /// @dev Reverts whole with the BondingManager's `CurrentRoundNotInitialized` when a ticket would pay before the
    /// current round is initialised (no ticket could then be paid).
    /// @return redeemed Per ticket, whether it was paid.
    function batchRedeemWinningTickets(
        Ticket[] calldata tickets,
        bytes[] calldata sigs,
        uint256[] calldata recipientRands
    ) external returns (bool[] memory redeemed);

    // -----------------------------------------------------------------------------------------------------------
    // Owner
    // -----------------------------------------------------------------------------------------------------------

    /// @notice Sets the unlock period in rounds; must exceed `ticketValidityRounds` (`InvalidUnlockPeriod`). Applies
    /// to unlocks started from now on. Owner only. Emits `UnlockPeriodSet`.
    function setUnlockPeriod(uint256 newUnlockPeriod) external;

    /// @notice Sets how many rounds after its creation round a ticket stays payable; must stay below
    /// `unlockPeriod` (`InvalidUnlockPeriod`) and within the BondingManager's `maxFeeBackfillRounds`
    /// (`InvalidTicketValidityRounds`). Owner only. Emits `TicketValidityRoundsSet`.
    function setTicketValidityRounds(uint256 newTicketValidityRounds) external;

    // -----------------------------------------------------------------------------------------------------------
    // Views
    // -----------------------------------------------------------------------------------------------------------

    /// @notice The BondingManager (activity checks, active count, fee credits).
    function bondingManager() external view returns (address);

    /// @notice The RoundsManager (current round, block hashes).
    function roundsManager() external view returns (address);

    /// @notice The Minter, which receives the ETH of redeemed tickets.
    function minter() external view returns (address);

    /// @notice Rounds between `unlock` and the first round `withdraw` is allowed in.
    function unlockPeriod() external view returns (uint256);

    /// @notice Rounds after its creation round in which a ticket is still payable (it is payable while
    /// `creationRound + ticketValidityRounds >= currentRound`).
    function ticketValidityRounds() external view returns (uint256);

    /// @notice `sender`'s deposit and reserve (wei) and the round from which it may withdraw (0 when not unlocking).
    function getSenderInfo(address sender)
        external
        view
        returns (uint256 deposit, uint256 reserve, uint256 withdrawRound);

    /// @notice Wei of `sender`'s reserve that `recipient` could still claim in the current round: its allocation
    /// `(reserve + claimedInRound) / activeCount` minus what it claimed this round, capped by the reserve; 0 when
    /// `recipient` is not active. Until the current round is initialised, activity and count are those of the last
    /// initialised round (the BondingManager's), and no claim can be made.
    function claimableReserve(address sender, address recipient) external view returns (uint256);

    /// @notice Wei of `sender`'s reserve that `recipient` claimed in `round`. Remembered for the latest round in which
    /// that recipient claimed from that sender (only the current round's claims limit a claim); 0 for other rounds.
    function claimedReserve(address sender, uint256 round, address recipient) external view returns (uint256);

    /// @notice Whether the ticket with EIP-712 digest `ticketHash` has been redeemed.
    function usedTickets(bytes32 ticketHash) external view returns (bool);

    /// @notice The EIP-712 digest of `ticket` under this contract's domain: what the sender signs.
    function getTicketHash(Ticket calldata ticket) external view returns (bytes32);
}
