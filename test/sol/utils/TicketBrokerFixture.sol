// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Fixture} from "./Fixture.sol";
import {ITicketBroker} from "../../../contracts/interfaces/ITicketBroker.sol";

/// @notice The staking fixture plus a TicketBroker wired as the BondingManager's broker, active orchestrators to pay,
/// senders with private keys, and ticket building / signing helpers.
abstract contract TicketBrokerFixture is Fixture {
    uint256 internal constant UNLOCK_PERIOD = 3;
    uint256 internal constant TICKET_VALIDITY = 2;
    uint256 internal constant ORCH_STAKE = 1_000 ether;
    /// @dev Every ticket wins with this probability.
    uint256 internal constant ALWAYS = type(uint256).max;
    /// @dev secp256k1 group order.
    uint256 internal constant SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    bytes32 internal constant TICKET_TYPEHASH = keccak256(
        "Ticket(address recipient,address sender,uint256 faceValue,uint256 winProb,uint256 senderNonce,bytes32 recipientRandHash,uint256 creationRound,bytes32 creationRoundBlockHash)"
    );

    ITicketBroker internal tb;

    uint256 internal senderKey = 0xA11CE;
    address internal sender;
    uint256 internal sender2Key = 0xB0B;
    address internal sender2;

    address internal orch;
    address internal orch2;
    address internal orch3;

    /// @dev Nonce source for tickets, so every built ticket is distinct.
    uint256 internal _nonce;

    function setUp() public virtual override {
        super.setUp();
        tb = ITicketBroker(
            _deploy(
                "TicketBroker",
                abi.encode(address(bm), address(rounds), address(minter), UNLOCK_PERIOD, TICKET_VALIDITY)
            )
        );
        vm.label(address(tb), "TicketBroker");
        bm.setTicketBroker(address(tb));
        broker = address(tb);

        sender = vm.addr(senderKey);
        vm.label(sender, "sender");
        sender2 = vm.addr(sender2Key);
        vm.label(sender2, "sender2");
        vm.deal(sender, 1_000 ether);
        vm.deal(sender2, 1_000 ether);

        orch = makeAddr("orch");
        orch2 = makeAddr("orch2");
        orch3 = makeAddr("orch3");
    }

    // ---------------------------------------------------------------- orchestrators

    /// @notice Registers orch, orch2, orch3 (fee share 50 %), moves to the next round (they are active) and has each
    /// call reward.
    function _activateOrchestrators() internal {
        _registerOrchestrator(orch, ORCH_STAKE, 100_000, 500_000);
        _registerOrchestrator(orch2, ORCH_STAKE, 100_000, 500_000);
        _registerOrchestrator(orch3, ORCH_STAKE, 100_000, 500_000);
        _nextRound();
        _reward(orch);
        _reward(orch2);
        _reward(orch3);
    }

    // ---------------------------------------------------------------- funding

    function _fundDeposit(address who, uint256 amount) internal {
        vm.deal(who, who.balance + amount);
        vm.prank(who);
        tb.fundDeposit{value: amount}();
    }

    function _fundReserve(address who, uint256 amount) internal {
        vm.deal(who, who.balance + amount);
        vm.prank(who);
        tb.fundReserve{value: amount}();
    }

    function _deposit(address who) internal view returns (uint256 d) {
        (d,,) = tb.getSenderInfo(who);
    }

    function _reserve(address who) internal view returns (uint256 r) {
        (, r,) = tb.getSenderInfo(who);
    }

    function _withdrawRound(address who) internal view returns (uint256 w) {
        (,, w) = tb.getSenderInfo(who);
    }

    // ---------------------------------------------------------------- tickets

    function _rand(uint256 nonce) internal pure returns (uint256) {
        return uint256(keccak256(abi.encode("recipientRand", nonce)));
    }

    /// @notice A ticket of the current round from `from` to `to`, with a fresh nonce and its recipientRand.
    function _ticket(address from, address to, uint256 faceValue, uint256 winProb)
        internal
        returns (ITicketBroker.Ticket memory t, uint256 rand)
    {
        uint256 nonce = ++_nonce;
        rand = _rand(nonce);
        uint256 round = rounds.currentRound();
        t = ITicketBroker.Ticket({
            recipient: to,
            sender: from,
            faceValue: faceValue,
            winProb: winProb,
            senderNonce: nonce,
            recipientRandHash: keccak256(abi.encodePacked(rand)),
            creationRound: round,
            creationRoundBlockHash: rounds.blockHashForRound(round)
        });
    }

    /// @notice The 65-byte r ‖ s ‖ v signature by `key` of the ticket's digest under `tb`'s domain.
    function _sign(uint256 key, ITicketBroker.Ticket memory t) internal view returns (bytes memory) {
        return _signDigest(key, tb.getTicketHash(t));
    }

    function _signDigest(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    /// @notice The EIP-712 digest computed here, independently of the contract, for any domain.
    function _digest(ITicketBroker.Ticket memory t, uint256 chainId, address verifyingContract)
        internal
        pure
        returns (bytes32)
    {
        bytes32 domainSeparator = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("Streamflow TicketBroker"),
                keccak256("1"),
                chainId,
                verifyingContract
            )
        );
        bytes32 structHash = keccak256(
            abi.encode(
                TICKET_TYPEHASH,
                t.recipient,
                t.sender,
                t.faceValue,
                t.winProb,
                t.senderNonce,
                t.recipientRandHash,
                t.creationRound,
                t.creationRoundBlockHash
            )
        );
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator, structHash));
    }

    /// @notice A signed, always-winning ticket of the current round from `sender` (key `senderKey`).
    function _signed(address to, uint256 faceValue)
        internal
        returns (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand)
    {
        (t, rand) = _ticket(sender, to, faceValue, ALWAYS);
        sig = _sign(senderKey, t);
    }

    function _signedBy(uint256 key, address to, uint256 faceValue)
        internal
        returns (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand)
    {
        (t, rand) = _ticket(vm.addr(key), to, faceValue, ALWAYS);
        sig = _sign(key, t);
    }

    /// @notice Whether the signature's s is in the lower half (what vm.sign produces).
    function _isLowS(bytes memory sig) internal pure returns (bool) {
        bytes32 s;
        assembly {
            s := mload(add(sig, 0x40))
        }
        return uint256(s) <= SECP256K1_N / 2;
    }

    /// @notice The high-s twin of a 65-byte signature: s' = n - s, v flipped. Recovers the same signer.
    function _highSTwin(bytes memory sig) internal pure returns (bytes memory) {
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly {
            r := mload(add(sig, 0x20))
            s := mload(add(sig, 0x40))
            v := byte(0, mload(add(sig, 0x60)))
        }
        return abi.encodePacked(r, bytes32(SECP256K1_N - uint256(s)), v == 27 ? uint8(28) : uint8(27));
    }

    /// @notice The EIP-2098 compact form of a 65-byte signature: r ‖ (yParity << 255 | s).
    function _compact(bytes memory sig) internal pure returns (bytes memory) {
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly {
            r := mload(add(sig, 0x20))
            s := mload(add(sig, 0x40))
            v := byte(0, mload(add(sig, 0x60)))
        }
        return abi.encodePacked(r, bytes32(uint256(s) | (uint256(v - 27) << 255)));
    }

    function _copy(ITicketBroker.Ticket memory t) internal pure returns (ITicketBroker.Ticket memory) {
        return abi.decode(abi.encode(t), (ITicketBroker.Ticket));
    }

    function _one(ITicketBroker.Ticket memory t) internal pure returns (ITicketBroker.Ticket[] memory ts) {
        ts = new ITicketBroker.Ticket[](1);
        ts[0] = t;
    }
}
