// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Vm} from "../utils/Vm.sol";
import {ITicketBroker} from "../../../contracts/interfaces/ITicketBroker.sol";
import {IBondingManager} from "../../../contracts/interfaces/IBondingManager.sol";
import {IRoundsManager} from "../../../contracts/interfaces/IRoundsManager.sol";

/// @notice Drives the TicketBroker for invariant tests: 3 senders (and a third party) fund deposits and reserves,
/// unlock, cancel and withdraw; always-winning tickets from those senders to 3 active orchestrators (and to accounts
/// that are not active) are redeemed singly and in batches, replayed, and created in earlier rounds; rounds pass
/// (orchestrators sometimes skip reward); a fourth orchestrator joins and leaves the active set mid-round.
/// @dev Ghost totals record what went in and out per sender so the invariants can check conservation. Checks that
/// need the state just before and after an action (a ticket paid twice, funding cancelling an unlock, a payment
/// that is not exactly the face value) keep the first violation in `violation`.
contract TicketBrokerHandler {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    uint256 internal constant ALWAYS = type(uint256).max;
    uint256 internal constant MAX_FACE_VALUE = 2 ether;
    uint256 internal constant MAX_FUNDING = 5 ether;

    ITicketBroker public immutable tb;
    IBondingManager public immutable bm;
    IRoundsManager public immutable rounds;
    address public immutable minter;

    uint256[] internal _senderKeys;
    address[] public senders;
    /// @dev The active orchestrators, then `churner` (in and out of the set), then an account never registered.
    address[] public recipients;
    address public immutable churner;
    address public immutable thirdParty;

    struct Redeemable {
        ITicketBroker.Ticket ticket;
        bytes sig;
        uint256 rand;
    }

    Redeemable[] internal _paid;
    uint256 internal _nonce;

    // ---------------------------------------------------------------- ghosts
    mapping(address sender => uint256) public ghostFunded;
    mapping(address sender => uint256) public ghostWithdrawn;
    /// @dev Face values of the sender's tickets that were paid.
    mapping(address sender => uint256) public ghostPaid;
    /// @dev Face values of every winning ticket the sender signed (each counted once).
    mapping(address sender => uint256) public ghostSigned;
    mapping(bytes32 ticketHash => uint256) public ghostPayments;
    /// @dev The reserve of `sender` when round `round` began to matter for claims (its first redemption attempt in
    /// the round), plus reserve funded in the round after that: what the round's claims are split from.
    mapping(address sender => mapping(uint256 round => uint256)) public ghostReserveBase;
    mapping(address sender => mapping(uint256 round => bool)) internal _baseSet;
    uint256 public ghostTotalPaid;
    uint256 public ghostRedemptions;
    uint256 public ghostReserveClaims;
    uint256 public ghostFailedRedemptions;
    mapping(bytes32 => uint256) public calls;
    string public violation;

    constructor(
        ITicketBroker tb_,
        IBondingManager bm_,
        IRoundsManager rounds_,
        uint256[] memory senderKeys,
        address[] memory orchestrators,
        address churner_
    ) {
        tb = tb_;
        bm = bm_;
        rounds = rounds_;
        minter = tb_.minter();
        churner = churner_;
        thirdParty = vm.addr(0x3D);
        vm.deal(thirdParty, 1_000_000 ether);
        for (uint256 i; i < senderKeys.length; i++) {
            _senderKeys.push(senderKeys[i]);
            address s = vm.addr(senderKeys[i]);
            senders.push(s);
            vm.deal(s, 1_000_000 ether);
        }
        for (uint256 i; i < orchestrators.length; i++) {
            recipients.push(orchestrators[i]);
        }
        recipients.push(churner_);
        recipients.push(vm.addr(0x4E));
    }

    function sendersLength() external view returns (uint256) {
        return senders.length;
    }

    function recipientsLength() external view returns (uint256) {
        return recipients.length;
    }

    function _fail(string memory what) internal {
        if (bytes(violation).length == 0) violation = what;
    }

    // ---------------------------------------------------------------- funding, unlock, withdraw

    function fund(uint256 senderSeed, uint256 funderSeed, uint256 depositAmount, uint256 reserveAmount) external {
        calls["fund"]++;
        uint256 i = senderSeed % senders.length;
        address s = senders[i];
        depositAmount = depositAmount % (MAX_FUNDING + 1);
        reserveAmount = reserveAmount % (MAX_FUNDING + 1);
        // A third of the time the sender funds itself; otherwise another account funds it (1 wei griefing included).
        uint256 mode = funderSeed % 3;
        address funder = mode == 0 ? s : thirdParty;
        if (mode == 2) (depositAmount, reserveAmount) = (depositAmount % 2, reserveAmount % 2);
        (,, uint256 withdrawRoundBefore) = tb.getSenderInfo(s);
        uint256 value = depositAmount + reserveAmount;
        vm.prank(funder);
        if (funder == s) tb.fundDepositAndReserve{value: value}(depositAmount, reserveAmount);
        else tb.fundDepositAndReserveFor{value: value}(s, depositAmount, reserveAmount);
        ghostFunded[s] += value;
        uint256 c = rounds.currentRound();
        if (_baseSet[s][c]) ghostReserveBase[s][c] += reserveAmount;
        (,, uint256 withdrawRoundAfter) = tb.getSenderInfo(s);
        if (withdrawRoundAfter != withdrawRoundBefore) _fail("funding changed the sender's unlock");
    }

    function unlock(uint256 senderSeed) external {
        calls["unlock"]++;
        address s = senders[senderSeed % senders.length];
        vm.prank(s);
        try tb.unlock() {} catch {}
    }

    function cancelUnlock(uint256 senderSeed) external {
        calls["cancelUnlock"]++;
        address s = senders[senderSeed % senders.length];
        vm.prank(s);
        try tb.cancelUnlock() {} catch {}
    }

    function withdraw(uint256 senderSeed) external {
        calls["withdraw"]++;
        address s = senders[senderSeed % senders.length];
        (uint256 d, uint256 r, uint256 w) = tb.getSenderInfo(s);
        uint256 before = s.balance;
        vm.prank(s);
        try tb.withdraw() {
            calls["withdraw.ok"]++;
            if (w == 0 || rounds.currentRound() < w) _fail("withdrew without a due unlock");
            if (s.balance - before != d + r) _fail("withdraw paid another amount than deposit + reserve");
            ghostWithdrawn[s] += d + r;
        } catch {}
    }

    // ---------------------------------------------------------------- redemption

    function _newTicket(uint256 senderSeed, uint256 recipientSeed, uint256 faceValue, uint256 back)
        internal
        returns (Redeemable memory x)
    {
        uint256 i = senderSeed % senders.length;
        address s = senders[i];
        uint256 c = rounds.currentRound();
        // Mostly the current round; sometimes older, up to one round past the validity window.
        back = back % 8 < 5 ? 0 : back % (tb.ticketValidityRounds() + 2);
        uint256 creationRound = back >= c ? 1 : c - back;
        uint256 nonce = ++_nonce;
        x.rand = uint256(keccak256(abi.encode("handler rand", nonce)));
        x.ticket = ITicketBroker.Ticket({
            recipient: recipients[recipientSeed % recipients.length],
            sender: s,
            faceValue: faceValue % (MAX_FACE_VALUE + 1),
            winProb: ALWAYS,
            senderNonce: nonce,
            recipientRandHash: keccak256(abi.encodePacked(x.rand)),
            creationRound: creationRound,
            creationRoundBlockHash: rounds.blockHashForRound(creationRound)
        });
        (uint8 v, bytes32 r, bytes32 sv) = vm.sign(_senderKeys[i], tb.getTicketHash(x.ticket));
        x.sig = abi.encodePacked(r, sv, v);
        ghostSigned[s] += x.ticket.faceValue;
    }

    function _setBase(address s) internal {
        uint256 c = rounds.currentRound();
        if (_baseSet[s][c]) return;
        _baseSet[s][c] = true;
        (, uint256 reserve,) = tb.getSenderInfo(s);
        ghostReserveBase[s][c] = reserve;
    }

    function _recordPaid(Redeemable memory x, uint256 fundsBefore, uint256 reserveBefore) internal {
        address s = x.ticket.sender;
        bytes32 h = tb.getTicketHash(x.ticket);
        if (++ghostPayments[h] > 1) _fail("a ticket was paid twice");
        ghostPaid[s] += x.ticket.faceValue;
        ghostTotalPaid += x.ticket.faceValue;
        ghostRedemptions++;
        (uint256 d, uint256 r,) = tb.getSenderInfo(s);
        if (fundsBefore != type(uint256).max && fundsBefore - (d + r) != x.ticket.faceValue) {
            _fail("a redemption took another amount than the face value");
        }
        if (reserveBefore != type(uint256).max && r < reserveBefore) ghostReserveClaims++;
        _paid.push(x);
    }

    function redeem(uint256 senderSeed, uint256 recipientSeed, uint256 faceValue, uint256 back) external {
        calls["redeem"]++;
        Redeemable memory x = _newTicket(senderSeed, recipientSeed, faceValue, back);
        address s = x.ticket.sender;
        _setBase(s);
        (uint256 d, uint256 r,) = tb.getSenderInfo(s);
        try tb.redeemWinningTicket(x.ticket, x.sig, x.rand) {
            _recordPaid(x, d + r, r);
        } catch {
            ghostFailedRedemptions++;
            if (tb.usedTickets(tb.getTicketHash(x.ticket))) _fail("a failed redemption burnt the ticket");
            (uint256 d2, uint256 r2,) = tb.getSenderInfo(s);
            if (d2 != d || r2 != r) _fail("a failed redemption moved funds");
        }
    }

    /// @dev Up to 6 tickets, mixing senders and recipients, with a duplicate and a replay of a paid ticket.
    function batchRedeem(uint256 seed, uint256 n) external {
        calls["batchRedeem"]++;
        n = 1 + n % 6;
        Redeemable[] memory xs = new Redeemable[](n);
        for (uint256 k; k < n; k++) {
            uint256 x = uint256(keccak256(abi.encode(seed, k)));
            if (k > 0 && x % 7 == 0) {
                xs[k] = xs[k - 1]; // duplicate within the batch
            } else if (x % 11 == 0 && _paid.length != 0) {
                xs[k] = _paid[(x >> 8) % _paid.length]; // replay of a paid ticket
            } else {
                xs[k] = _newTicket(x, x >> 16, x >> 32, x >> 96);
            }
            _setBase(xs[k].ticket.sender);
        }
        ITicketBroker.Ticket[] memory ts = new ITicketBroker.Ticket[](n);
        bytes[] memory sigs = new bytes[](n);
        uint256[] memory rands = new uint256[](n);
        for (uint256 k; k < n; k++) {
            (ts[k], sigs[k], rands[k]) = (xs[k].ticket, xs[k].sig, xs[k].rand);
        }
        uint256 minterBefore = minter.balance;
        try tb.batchRedeemWinningTickets(ts, sigs, rands) returns (bool[] memory ok) {
            uint256 total;
            for (uint256 k; k < n; k++) {
                if (ok[k]) {
                    _recordPaid(xs[k], type(uint256).max, type(uint256).max);
                    total += ts[k].faceValue;
                } else {
                    ghostFailedRedemptions++;
                }
            }
            if (minter.balance - minterBefore != total) _fail("batch sent another amount than the paid face values");
        } catch {
            ghostFailedRedemptions += n;
        }
    }

    function replay(uint256 idx) external {
        calls["replay"]++;
        if (_paid.length == 0) return;
        Redeemable memory x = _paid[idx % _paid.length];
        try tb.redeemWinningTicket(x.ticket, x.sig, x.rand) {
            _fail("a replayed ticket was paid");
        } catch {}
    }

    // ---------------------------------------------------------------- rounds and the active set

    function nextRound(uint256 skipMask) external {
        calls["nextRound"]++;
        vm.roll(rounds.nextRoundStartBlock());
        rounds.initializeRound();
        for (uint256 i; i < recipients.length - 1; i++) {
            if ((skipMask >> i) & 1 == 1) continue;
            vm.prank(recipients[i]);
            try bm.reward() {} catch {}
        }
    }

    /// @dev The churner joins the active set (active next round) or leaves it (inactive next round), mid-round.
    function churn() external {
        calls["churn"]++;
        if (bm.isRegisteredOrchestrator(churner)) {
            uint256 stake = bm.pendingStake(churner);
            vm.prank(churner);
            try bm.unbond(stake) {} catch {}
        } else {
            vm.startPrank(churner);
            try bm.bond(10 ether, churner) {
                try bm.registerOrchestrator(0, 500_000) {} catch {}
            } catch {}
            vm.stopPrank();
        }
    }
}
