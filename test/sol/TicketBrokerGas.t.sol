// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {TicketBrokerFixture} from "./utils/TicketBrokerFixture.sol";
import {ITicketBroker} from "../../contracts/interfaces/ITicketBroker.sol";

/// @notice Gas of the calls the issue sets targets for, in a realistic state: the recipient is an active
/// orchestrator that called reward() in the current round and has been paid before; tickets are of the current
/// round. Each test ends with the one call it measures, so `forge test --isolate --gas-report` reports it as its own
/// transaction (intrinsic gas, calldata and cold accesses included, like a receipt's gasUsed). The assertions bound
/// the execution gas measured in-test (without the 21,000 + calldata a transaction adds).
/// Targets (receipt gasUsed): fundDepositAndReserve ≤ 90,000; redeem ≤ 110,000; batch of 10 ≤ 60,000 per ticket;
/// reserve claim ≤ 160,000.
contract TicketBrokerGasTest is TicketBrokerFixture {
    function setUp() public override {
        super.setUp();
        _activateOrchestrators();
        // Steady state: orch has been paid before (its fee records exist), in an earlier round.
        _fundDeposit(sender2, 1 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signedBy(sender2Key, orch, 0.1 ether);
        tb.redeemWinningTicket(t, sig, rand);
        _nextRound();
        _reward(orch);
        _reward(orch2);
        _reward(orch3);
    }

    function test_gas_fundDepositAndReserve_first() public {
        address fresh = makeAddr("freshSender");
        vm.deal(fresh, 10 ether);
        vm.prank(fresh);
        uint256 g = gasleft();
        tb.fundDepositAndReserve{value: 2 ether}(1 ether, 1 ether);
        g -= gasleft();
        assertLe(g, 90_000 - 21_000, "fundDepositAndReserve execution gas");
    }

    function test_gas_redeem_single() public {
        _fundDeposit(sender, 10 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 0.01 ether);
        uint256 g = gasleft();
        tb.redeemWinningTicket(t, sig, rand);
        g -= gasleft();
        assertLe(g, 110_000 - 21_000, "redeem execution gas");
    }

    /// @dev The orchestrator's first fee ever (its fee slots go from zero to non-zero).
    function test_gas_redeem_single_firstFeeOfTheOrchestrator() public {
        _fundDeposit(sender, 10 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch2, 0.01 ether);
        tb.redeemWinningTicket(t, sig, rand);
    }

    function test_gas_redeem_batch10() public {
        _fundDeposit(sender, 10 ether);
        (ITicketBroker.Ticket[] memory ts, bytes[] memory sigs, uint256[] memory rands) = _tickets(10, orch);
        uint256 g = gasleft();
        tb.batchRedeemWinningTickets(ts, sigs, rands);
        g -= gasleft();
        assertLe(g, 10 * 60_000 - 21_000, "batch of 10 execution gas");
    }

    /// @dev The deposit is empty; the ticket is paid from the recipient's allocation of the reserve (its first
    /// claim on this sender).
    function test_gas_redeem_reserveClaim() public {
        _fundReserve(sender, 3 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 0.01 ether);
        uint256 g = gasleft();
        tb.redeemWinningTicket(t, sig, rand);
        g -= gasleft();
        assertLe(g, 160_000 - 21_000, "reserve claim execution gas");
    }

    /// @dev The deposit covers part of the face value, the reserve the rest.
    function test_gas_redeem_reserveClaim_partlyFromDeposit() public {
        vm.prank(sender);
        tb.fundDepositAndReserve{value: 3.005 ether}(0.005 ether, 3 ether);
        (ITicketBroker.Ticket memory t, bytes memory sig, uint256 rand) = _signed(orch, 0.01 ether);
        tb.redeemWinningTicket(t, sig, rand);
    }

    function _tickets(uint256 n, address to)
        internal
        returns (ITicketBroker.Ticket[] memory ts, bytes[] memory sigs, uint256[] memory rands)
    {
        ts = new ITicketBroker.Ticket[](n);
        sigs = new bytes[](n);
        rands = new uint256[](n);
        for (uint256 i; i < n; i++) {
            (ts[i], sigs[i], rands[i]) = _signed(to, 0.01 ether);
        }
    }
}
