// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {ITicketBroker} from "./interfaces/ITicketBroker.sol";
import {IBondingManager} from "./interfaces/IBondingManager.sol";
import {IRoundsManager} from "./interfaces/IRoundsManager.sol";
import {IMinter} from "./interfaces/IMinter.sol";

/// @title TicketBroker
/// @notice Deposits, reserves and winning-ticket redemption for probabilistic micropayments. See `ITicketBroker`.
/// @dev Storage is laid out for redemption gas: a sender's deposit and reserve share one slot (the only sender slot a
/// deposit-paid redemption touches); its unlock and the reserve it paid out in its latest claim round share
/// another; a recipient's claims on a sender's reserve are kept for the latest claim round only (reset lazily),
/// so repeat claims rewrite a slot instead of filling a new one. The wired contracts are immutable (no SLOAD per
/// call). Errors are built as return data by the check helpers so the single and batch paths share them: the single
/// path reverts with it, the batch reports its selector.
contract TicketBroker is ITicketBroker, Ownable, EIP712 {
    using SafeCast for uint256;

    /// @dev keccak256 of the EIP-712 `Ticket` type string.
    bytes32 private constant TICKET_TYPEHASH = keccak256(
        "Ticket(address recipient,address sender,uint256 faceValue,uint256 winProb,uint256 senderNonce,bytes32 recipientRandHash,uint256 creationRound,bytes32 creationRoundBlockHash)"
    );
    /// @dev secp256k1 group order / 2: a larger `s` is the malleable twin of a valid signature.
    uint256 private constant HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    struct Funds {
        uint128 deposit;
        uint128 reserve;
    }

    /// @dev `claimedInRound` is the reserve paid out in `claimRound` (to every recipient together). `opened` is set
    /// by the first funding so that the slot is never zero afterwards: an unlock or a reserve claim (paid by the
    /// recipient) then rewrites it for 5,000 gas instead of filling it for 22,100.
    struct Lock {
        uint32 withdrawRound;
        uint32 claimRound;
        bool opened;
        uint128 claimedInRound;
    }

    /// @dev What one recipient claimed from one sender's reserve in `round`.
    struct Claim {
        uint64 round;
        uint128 amount;
    }

    struct Params {
        uint64 unlockPeriod;
        uint64 ticketValidityRounds;
    }

    /// @dev Per-call data shared by the tickets of one redemption call.
    struct Ctx {
        uint256 round;
        uint256 validity;
        // 0 until read: the active count is only needed when a deposit falls short.
        uint256 activeCount;
    }

    /// @dev A batch's memoised reads (per distinct recipient and creation round) and its fee credits grouped by
    /// (recipient, creation round).
    struct Batch {
        address[] recipients;
        bool[] active;
        uint256 recipientCount;
        uint256[] hashRounds;
        bytes32[] hashes;
        uint256 hashCount;
        address[] feeRecipients;
        uint256[] feeRounds;
        uint256[] feeAmounts;
        uint256 feeCount;
        uint256 total;
    }

    /// @inheritdoc ITicketBroker
    address public immutable bondingManager;
    /// @inheritdoc ITicketBroker
    address public immutable roundsManager;
    /// @inheritdoc ITicketBroker
    address public immutable minter;

    /// @inheritdoc ITicketBroker
    mapping(bytes32 ticketHash => bool) public usedTickets;

    Params private _params;
    mapping(address sender => Funds) private _funds;
    mapping(address sender => Lock) private _locks;
    mapping(address sender => mapping(address recipient => Claim)) private _claims;

    /// @param bondingManager_ The BondingManager (its `ticketBroker` must be set to this contract).
    /// @param roundsManager_ The RoundsManager.
    /// @param minter_ The Minter that receives redeemed ETH (the BondingManager's Minter).
    /// @param unlockPeriod_ Rounds from `unlock` to `withdraw`; > `ticketValidityRounds_`.
    /// @param ticketValidityRounds_ Rounds after its creation round in which a ticket is payable; ≤ the
    /// BondingManager's `maxFeeBackfillRounds`.
    constructor(
        address bondingManager_,
        address roundsManager_,
        address minter_,
        uint256 unlockPeriod_,
        uint256 ticketValidityRounds_
    ) Ownable(msg.sender) EIP712("Streamflow TicketBroker", "1") {
        if (bondingManager_ == address(0) || roundsManager_ == address(0) || minter_ == address(0)) {
            revert ZeroAddress();
        }
        bondingManager = bondingManager_;
        roundsManager = roundsManager_;
        minter = minter_;
        _setParams(unlockPeriod_, ticketValidityRounds_);
        emit UnlockPeriodSet(unlockPeriod_);
        emit TicketValidityRoundsSet(ticketValidityRounds_);
    }

    // =============================================================================================================
    // Funding
    // =============================================================================================================

    /// @inheritdoc ITicketBroker
    function fundDeposit() external payable {
        _fund(msg.sender, msg.value, 0);
    }

    /// @inheritdoc ITicketBroker
    function fundReserve() external payable {
        _fund(msg.sender, 0, msg.value);
    }

    /// @inheritdoc ITicketBroker
    function fundDepositAndReserve(uint256 depositAmount, uint256 reserveAmount) external payable {
        _checkFundingAmount(depositAmount, reserveAmount);
        _fund(msg.sender, depositAmount, reserveAmount);
    }

    /// @inheritdoc ITicketBroker
    function fundDepositFor(address sender) external payable {
        if (sender == address(0)) revert ZeroAddress();
        _fund(sender, msg.value, 0);
    }

    /// @inheritdoc ITicketBroker
    function fundReserveFor(address sender) external payable {
        if (sender == address(0)) revert ZeroAddress();
        _fund(sender, 0, msg.value);
    }

    /// @inheritdoc ITicketBroker
    function fundDepositAndReserveFor(address sender, uint256 depositAmount, uint256 reserveAmount) external payable {
        if (sender == address(0)) revert ZeroAddress();
        _checkFundingAmount(depositAmount, reserveAmount);
        _fund(sender, depositAmount, reserveAmount);
    }

    // =============================================================================================================
    // Unlock and withdraw
    // =============================================================================================================

    /// @inheritdoc ITicketBroker
    function unlock() external {
        Lock storage lock = _locks[msg.sender];
        uint256 withdrawRound = lock.withdrawRound;
        if (withdrawRound != 0) revert UnlockInProgress(withdrawRound);
        Funds memory funds = _funds[msg.sender];
        if (funds.deposit == 0 && funds.reserve == 0) revert NothingToUnlock();
        uint256 round = IRoundsManager(roundsManager).currentRound();
        withdrawRound = round + _params.unlockPeriod;
        lock.withdrawRound = withdrawRound.toUint32();
        emit Unlock(msg.sender, round, withdrawRound);
    }

    /// @inheritdoc ITicketBroker
    function cancelUnlock() external {
        Lock storage lock = _locks[msg.sender];
        if (lock.withdrawRound == 0) revert NotUnlocking();
        lock.withdrawRound = 0;
        emit UnlockCancelled(msg.sender);
    }

    /// @inheritdoc ITicketBroker
    function withdraw() external {
        Lock storage lock = _locks[msg.sender];
        uint256 withdrawRound = lock.withdrawRound;
        if (withdrawRound == 0) revert NotUnlocking();
        uint256 round = IRoundsManager(roundsManager).currentRound();
        if (round < withdrawRound) revert UnlockNotDue(withdrawRound, round);
        Funds memory funds = _funds[msg.sender];
        delete _funds[msg.sender];
        lock.withdrawRound = 0;
        emit Withdrawal(msg.sender, funds.deposit, funds.reserve);
        uint256 amount = uint256(funds.deposit) + funds.reserve;
        if (amount != 0) {
            (bool ok,) = msg.sender.call{value: amount}("");
            if (!ok) revert EthTransferFailed(msg.sender, amount);
        }
    }

    // =============================================================================================================
    // Redemption
    // =============================================================================================================

    /// @inheritdoc ITicketBroker
    function redeemWinningTicket(Ticket calldata ticket, bytes calldata sig, uint256 recipientRand) external {
        if (_randHash(recipientRand) != ticket.recipientRandHash) {
            revert InvalidRecipientRand(ticket.recipientRandHash);
        }
        address recipient = ticket.recipient;
        if (recipient == address(0)) revert RecipientNotActive(recipient);
        uint256 faceValue = ticket.faceValue;
        if (faceValue == 0) {
            // Nothing to credit: the checks with plain reads, then marked used.
            _revertWith(_redeemWithReads(ticket, sig, recipientRand));
            return;
        }
        uint256 creationRound = ticket.creationRound;
        // The fee credit comes first because it also answers the current round and the recipient's activity, which
        // saves two calls; any check below that fails reverts the transaction, credit included. The BondingManager
        // makes no external call here, so nothing can re-enter before this contract's state is written.
        Ctx memory ctx;
        bool active;
        try IBondingManager(bondingManager).updateOrchestratorWithFees(recipient, faceValue, creationRound) returns (
            uint256 round, bool isActive
        ) {
            (ctx.round, active) = (round, isActive);
        } catch (bytes memory reason) {
            // Refused (round not initialised, fee round out of its window): the ticket's own error comes first, as
            // if the credit came last.
            bytes memory err = _redeemWithReads(ticket, sig, recipientRand);
            if (err.length == 0) err = reason;
            assembly ("memory-safe") {
                revert(add(err, 0x20), mload(err))
            }
        }
        if (!active) revert RecipientNotActive(recipient);
        if (creationRound != ctx.round) {
            // A ticket of the current round cannot have expired: the validity is only read for older ones.
            ctx.validity = _params.ticketValidityRounds;
            _revertWith(_expiryError(creationRound, ctx));
        }
        _revertWith(_blockHashError(ticket, IRoundsManager(roundsManager).blockHashForRound(creationRound)));
        bytes32 ticketHash = _ticketHash(ticket);
        _revertWith(_ticketError(ticket, ticketHash, sig, recipientRand));
        _revertWith(_pay(ticket, ticketHash, ctx));
        IMinter(minter).depositETH{value: faceValue}();
    }

    /// @inheritdoc ITicketBroker
    function batchRedeemWinningTickets(
        Ticket[] calldata tickets,
        bytes[] calldata sigs,
        uint256[] calldata recipientRands
    ) external returns (bool[] memory redeemed) {
        uint256 n = tickets.length;
        if (sigs.length != n || recipientRands.length != n) {
            revert LengthMismatch(n, sigs.length, recipientRands.length);
        }
        redeemed = new bool[](n);
        Ctx memory ctx = _context();
        Batch memory b = Batch({
            recipients: new address[](n),
            active: new bool[](n),
            recipientCount: 0,
            hashRounds: new uint256[](n),
            hashes: new bytes32[](n),
            hashCount: 0,
            feeRecipients: new address[](n),
            feeRounds: new uint256[](n),
            feeAmounts: new uint256[](n),
            feeCount: 0,
            total: 0
        });
        for (uint256 i; i < n; ++i) {
            redeemed[i] = _redeemInBatch(tickets[i], sigs[i], recipientRands[i], ctx, b);
        }

        for (uint256 k; k < b.feeCount; ++k) {
            IBondingManager(bondingManager)
                .updateOrchestratorWithFees(b.feeRecipients[k], b.feeAmounts[k], b.feeRounds[k]);
        }
        if (b.total != 0) IMinter(minter).depositETH{value: b.total}();
    }

    // =============================================================================================================
    // Owner
    // =============================================================================================================

    /// @inheritdoc ITicketBroker
    function setUnlockPeriod(uint256 newUnlockPeriod) external onlyOwner {
        _setParams(newUnlockPeriod, _params.ticketValidityRounds);
        emit UnlockPeriodSet(newUnlockPeriod);
    }

    /// @inheritdoc ITicketBroker
    function setTicketValidityRounds(uint256 newTicketValidityRounds) external onlyOwner {
        _setParams(_params.unlockPeriod, newTicketValidityRounds);
        emit TicketValidityRoundsSet(newTicketValidityRounds);
    }

    // =============================================================================================================
    // Views
    // =============================================================================================================

    /// @inheritdoc ITicketBroker
    function unlockPeriod() external view returns (uint256) {
        return _params.unlockPeriod;
    }

    /// @inheritdoc ITicketBroker
    function ticketValidityRounds() external view returns (uint256) {
        return _params.ticketValidityRounds;
    }

    /// @inheritdoc ITicketBroker
    function getSenderInfo(address sender)
        external
        view
        returns (uint256 deposit, uint256 reserve, uint256 withdrawRound)
    {
        Funds memory funds = _funds[sender];
        return (funds.deposit, funds.reserve, _locks[sender].withdrawRound);
    }

    /// @inheritdoc ITicketBroker
    function claimableReserve(address sender, address recipient) external view returns (uint256) {
        IBondingManager bm = IBondingManager(bondingManager);
        if (recipient == address(0) || !bm.isActiveOrchestrator(recipient)) return 0;
        uint256 round = IRoundsManager(roundsManager).currentRound();
        return _available(
            _locks[sender], _claims[sender][recipient], _funds[sender].reserve, round, bm.currentRoundActiveCount()
        );
    }

    /// @inheritdoc ITicketBroker
    function claimedReserve(address sender, uint256 round, address recipient) external view returns (uint256) {
        Claim memory claim = _claims[sender][recipient];
        return claim.round == round ? claim.amount : 0;
    }

    /// @inheritdoc ITicketBroker
    function getTicketHash(Ticket calldata ticket) external view returns (bytes32) {
        return _ticketHash(ticket);
    }

    // =============================================================================================================
    // Internals
    // =============================================================================================================

    function _fund(address sender, uint256 depositAmount, uint256 reserveAmount) private {
        Funds memory f = _funds[sender];
        if (f.deposit == 0 && f.reserve == 0) {
            Lock storage lock = _locks[sender];
            if (!lock.opened) lock.opened = true;
        }
        _storeFunds(sender, (f.deposit + depositAmount).toUint128(), (f.reserve + reserveAmount).toUint128());
        // A zero amount changes nothing and emits nothing.
        if (depositAmount != 0) emit DepositFunded(sender, msg.sender, depositAmount);
        if (reserveAmount != 0) emit ReserveFunded(sender, msg.sender, reserveAmount);
    }

    function _checkFundingAmount(uint256 depositAmount, uint256 reserveAmount) private view {
        // Checked addition: two huge amounts must not wrap to msg.value.
        uint256 expected = depositAmount + reserveAmount;
        if (msg.value != expected) revert InvalidFundingAmount(msg.value, expected);
    }

    function _setParams(uint256 newUnlockPeriod, uint256 newTicketValidityRounds) private {
        if (newUnlockPeriod <= newTicketValidityRounds) {
            revert InvalidUnlockPeriod(newUnlockPeriod, newTicketValidityRounds);
        }
        // Fees of a ticket are credited to its creation round, which the BondingManager only accepts this far back.
        uint256 maxBackfill = IBondingManager(bondingManager).maxFeeBackfillRounds();
        if (newTicketValidityRounds > maxBackfill) {
            revert InvalidTicketValidityRounds(newTicketValidityRounds, maxBackfill);
        }
        _params = Params({
            unlockPeriod: newUnlockPeriod.toUint64(), ticketValidityRounds: newTicketValidityRounds.toUint64()
        });
    }

    /// @dev A single redemption's checks in order with plain reads (the activity view, the RoundsManager's round),
    /// then the payment: returns the first error, or "" once the ticket is paid and marked used. No fee credit.
    function _redeemWithReads(Ticket calldata ticket, bytes calldata sig, uint256 recipientRand)
        private
        returns (bytes memory err)
    {
        address recipient = ticket.recipient;
        if (!IBondingManager(bondingManager).isActiveOrchestrator(recipient)) {
            return abi.encodeWithSelector(RecipientNotActive.selector, recipient);
        }
        Ctx memory ctx = _context();
        uint256 creationRound = ticket.creationRound;
        err = _expiryError(creationRound, ctx);
        if (err.length == 0) {
            err = _blockHashError(ticket, IRoundsManager(roundsManager).blockHashForRound(creationRound));
        }
        if (err.length != 0) return err;
        bytes32 ticketHash = _ticketHash(ticket);
        err = _ticketError(ticket, ticketHash, sig, recipientRand);
        if (err.length == 0) err = _pay(ticket, ticketHash, ctx);
    }

    function _context() private view returns (Ctx memory ctx) {
        ctx.round = IRoundsManager(roundsManager).currentRound();
        ctx.validity = _params.ticketValidityRounds;
    }

    /// @dev One ticket of a batch: the checks of `redeemWinningTicket` with memoised external reads, then the
    /// payment; its fee credit and ETH are added to the batch's totals. Returns whether it was paid.
    function _redeemInBatch(
        Ticket calldata ticket,
        bytes calldata sig,
        uint256 recipientRand,
        Ctx memory ctx,
        Batch memory b
    ) private returns (bool) {
        bytes32 ticketHash = _ticketHash(ticket);
        bytes memory err = _batchCheckError(ticket, ticketHash, sig, recipientRand, ctx, b);
        if (err.length == 0) err = _pay(ticket, ticketHash, ctx);
        if (err.length != 0) {
            emit TicketRedemptionFailed(ticketHash, _selector(err));
            return false;
        }
        uint256 faceValue = ticket.faceValue;
        if (faceValue == 0) return true;
        b.total += faceValue;
        address recipient = ticket.recipient;
        uint256 creationRound = ticket.creationRound;
        uint256 k;
        uint256 count = b.feeCount;
        while (k < count && (b.feeRecipients[k] != recipient || b.feeRounds[k] != creationRound)) ++k;
        if (k == count) {
            b.feeRecipients[k] = recipient;
            b.feeRounds[k] = creationRound;
            b.feeCount = count + 1;
        }
        b.feeAmounts[k] += faceValue;
        return true;
    }

    function _batchCheckError(
        Ticket calldata ticket,
        bytes32 ticketHash,
        bytes calldata sig,
        uint256 recipientRand,
        Ctx memory ctx,
        Batch memory b
    ) private view returns (bytes memory err) {
        if (_randHash(recipientRand) != ticket.recipientRandHash) {
            return abi.encodeWithSelector(InvalidRecipientRand.selector, ticket.recipientRandHash);
        }
        address recipient = ticket.recipient;
        if (!_activeCached(recipient, b)) return abi.encodeWithSelector(RecipientNotActive.selector, recipient);
        uint256 creationRound = ticket.creationRound;
        err = _expiryError(creationRound, ctx);
        if (err.length == 0) err = _blockHashError(ticket, _blockHashCached(creationRound, b));
        if (err.length == 0) err = _ticketError(ticket, ticketHash, sig, recipientRand);
    }

    /// @dev Pays `ticket` from its sender's deposit, and any shortfall from the recipient's allocation of the
    /// reserve in the current round, marks it used and emits; or changes nothing and returns the error.
    function _pay(Ticket calldata ticket, bytes32 ticketHash, Ctx memory ctx) private returns (bytes memory) {
        address sender = ticket.sender;
        uint256 faceValue = ticket.faceValue;
        Funds memory f = _funds[sender];
        uint256 fromReserve;
        if (faceValue <= f.deposit) {
            unchecked {
                _storeFunds(sender, f.deposit - faceValue, f.reserve);
            }
        } else {
            fromReserve = faceValue - f.deposit;
            bytes memory err = _claimReserve(ticket, f, fromReserve, ctx);
            if (err.length != 0) return err;
        }
        usedTickets[ticketHash] = true;
        emit WinningTicketRedeemed(sender, ticket.recipient, ticketHash, faceValue, ticket.creationRound, fromReserve);
        return "";
    }

    /// @dev Takes the whole deposit and the `shortfall` (faceValue - deposit) from the reserve, within the recipient's
    /// allocation for the current round, or returns `InsufficientFunds` and changes nothing.
    function _claimReserve(Ticket calldata ticket, Funds memory f, uint256 shortfall, Ctx memory ctx)
        private
        returns (bytes memory)
    {
        address sender = ticket.sender;
        address recipient = ticket.recipient;
        uint256 round = ctx.round;
        if (ctx.activeCount == 0) ctx.activeCount = IBondingManager(bondingManager).currentRoundActiveCount();
        Lock memory lock = _locks[sender];
        Claim memory claim = _claims[sender][recipient];
        uint256 available = _available(lock, claim, f.reserve, round, ctx.activeCount);
        if (shortfall > available) {
            return abi.encodeWithSelector(InsufficientFunds.selector, ticket.faceValue, f.deposit + available);
        }
        // shortfall ≤ available ≤ reserve < 2^128; a round's claims never exceed the reserve held in it.
        unchecked {
            _storeFunds(sender, 0, f.reserve - shortfall);
            uint256 claimedInRound = lock.claimRound == round ? lock.claimedInRound : 0;
            Lock storage lockSlot = _locks[sender];
            uint256 packedLock =
                uint256(lock.withdrawRound) | round << 32 | 1 << 64 | (claimedInRound + shortfall) << 72;
            uint256 claimedByRecipient = claim.round == round ? claim.amount : 0;
            Claim storage claimSlot = _claims[sender][recipient];
            uint256 packedClaim = round | (claimedByRecipient + shortfall) << 64;
            // Whole-slot writes (layouts of `Lock` and `Claim`, lowest-order member first). Round numbers fit in 32
            // bits: the BondingManager stores them as uint32 and stops initialising rounds beyond.
            assembly ("memory-safe") {
                sstore(lockSlot.slot, packedLock)
                sstore(claimSlot.slot, packedClaim)
            }
        }
        return "";
    }

    /// @dev Writes a sender's funds slot in one SSTORE (`Funds` layout: deposit in the low 128 bits). Callers pass
    /// amounts below 2^128 (cast-checked when funding; only ever decreasing otherwise).
    function _storeFunds(address sender, uint256 deposit, uint256 reserve) private {
        Funds storage slot = _funds[sender];
        assembly ("memory-safe") {
            sstore(slot.slot, or(deposit, shl(128, reserve)))
        }
    }

    /// @dev What a recipient whose claims are `claim` may still take from a reserve of `reserve` in `round`: its
    /// allocation `(reserve + claimedInRound) / activeCount` (the reserve as it stood at the round's start, plus any
    /// funding since) minus its own claims of the round, capped by the reserve.
    function _available(Lock memory lock, Claim memory claim, uint256 reserve, uint256 round, uint256 activeCount)
        private
        pure
        returns (uint256 available)
    {
        if (activeCount == 0) return 0;
        uint256 claimedInRound = lock.claimRound == round ? lock.claimedInRound : 0;
        uint256 claimedByRecipient = claim.round == round ? claim.amount : 0;
        uint256 allocation = (reserve + claimedInRound) / activeCount;
        if (allocation > claimedByRecipient) available = allocation - claimedByRecipient;
        if (available > reserve) available = reserve;
    }

    function _expiryError(uint256 creationRound, Ctx memory ctx) private pure returns (bytes memory) {
        uint256 round = ctx.round;
        if (creationRound > round || creationRound + ctx.validity < round) {
            return abi.encodeWithSelector(TicketExpired.selector, creationRound, round);
        }
        return "";
    }

    function _blockHashError(Ticket calldata ticket, bytes32 chainHash) private pure returns (bytes memory) {
        bytes32 given = ticket.creationRoundBlockHash;
        if (chainHash == 0 || chainHash != given) {
            return abi.encodeWithSelector(InvalidCreationRoundBlockHash.selector, ticket.creationRound, given);
        }
        return "";
    }

    /// @dev Used, signature, win: the checks that need the ticket hash.
    function _ticketError(Ticket calldata ticket, bytes32 ticketHash, bytes calldata sig, uint256 recipientRand)
        private
        view
        returns (bytes memory)
    {
        if (usedTickets[ticketHash]) return abi.encodeWithSelector(TicketUsed.selector, ticketHash);
        if (!_validSignature(ticketHash, sig, ticket.sender)) return abi.encodeWithSelector(InvalidSignature.selector);
        if (!_wins(sig, recipientRand, ticket.winProb)) return abi.encodeWithSelector(TicketDidNotWin.selector);
        return "";
    }

    /// @dev 65 bytes r ‖ s ‖ v, v ∈ {27, 28}, s ≤ n/2, signed by `signer` (never the zero address). The 64-byte
    /// EIP-2098 form and the high-s twin are refused: each would be a second lottery draw for one ticket.
    function _validSignature(bytes32 digest, bytes calldata sig, address signer) private pure returns (bool) {
        if (sig.length != 65) return false;
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly ("memory-safe") {
            r := calldataload(sig.offset)
            s := calldataload(add(sig.offset, 0x20))
            v := byte(0, calldataload(add(sig.offset, 0x40)))
        }
        if (uint256(s) > HALF_N || (v != 27 && v != 28)) return false;
        address recovered = ecrecover(digest, v, r, s);
        return recovered != address(0) && recovered == signer;
    }

    /// @dev `uint256(keccak256(abi.encodePacked(sig, recipientRand))) < winProb`.
    function _wins(bytes calldata sig, uint256 recipientRand, uint256 winProb) private pure returns (bool won) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            calldatacopy(ptr, sig.offset, sig.length)
            mstore(add(ptr, sig.length), recipientRand)
            won := lt(keccak256(ptr, add(sig.length, 0x20)), winProb)
        }
    }

    /// @dev `keccak256(abi.encodePacked(recipientRand))`.
    function _randHash(uint256 recipientRand) private pure returns (bytes32 h) {
        assembly ("memory-safe") {
            mstore(0x00, recipientRand)
            h := keccak256(0x00, 0x20)
        }
    }

    /// @dev The EIP-712 digest: the struct hash over the ticket's eight static words as they are in calldata.
    function _ticketHash(Ticket calldata ticket) private view returns (bytes32) {
        bytes32 typeHash = TICKET_TYPEHASH;
        bytes32 structHash;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, typeHash)
            calldatacopy(add(ptr, 0x20), ticket, 0x100)
            structHash := keccak256(ptr, 0x120)
        }
        return _hashTypedDataV4(structHash);
    }

    function _activeCached(address recipient, Batch memory b) private view returns (bool isActive) {
        uint256 count = b.recipientCount;
        for (uint256 k; k < count; ++k) {
            if (b.recipients[k] == recipient) return b.active[k];
        }
        isActive = recipient != address(0) && IBondingManager(bondingManager).isActiveOrchestrator(recipient);
        b.recipients[count] = recipient;
        b.active[count] = isActive;
        b.recipientCount = count + 1;
    }

    function _blockHashCached(uint256 round, Batch memory b) private view returns (bytes32 h) {
        uint256 count = b.hashCount;
        for (uint256 k; k < count; ++k) {
            if (b.hashRounds[k] == round) return b.hashes[k];
        }
        h = IRoundsManager(roundsManager).blockHashForRound(round);
        b.hashRounds[count] = round;
        b.hashes[count] = h;
        b.hashCount = count + 1;
    }

    function _selector(bytes memory err) private pure returns (bytes4 sel) {
        assembly ("memory-safe") {
            sel := mload(add(err, 0x20))
        }
    }

    function _revertWith(bytes memory err) private pure {
        if (err.length != 0) {
            assembly ("memory-safe") {
                revert(add(err, 0x20), mload(err))
            }
        }
    }
}
