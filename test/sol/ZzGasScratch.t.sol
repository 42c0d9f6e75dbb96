// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Fixture} from "./utils/Fixture.sol";
import {IBondingManager} from "../../contracts/interfaces/IBondingManager.sol";

abstract contract GasBase is Fixture {
    address[] internal members;
    address internal newDelegator;
    address internal d1;
    function n() internal pure virtual returns (uint256);

    function setUp() public override {
        super.setUp();
        uint256 N = n();
        for (uint256 i = 0; i < N; i++) {
            address m = address(uint160(uint256(keccak256(abi.encode("member", i)))));
            members.push(m);
            _registerOrchestrator(m, 1000 ether + (N - i) * 1 ether, 100_000, 500_000);
        }
        newDelegator = makeAddr("newDelegator");
        _fund(newDelegator, 100 ether);
        d1 = makeAddr("d1");
        _bond(d1, 10 ether, members[N / 2]);
        _nextRound();
        _reward(members[N / 2]);
        _creditFees(members[N / 2], 1 ether, _round());
        _nextRound();
    }

    function test_gas_bondNewDelegatorStay() public {
        address o = members[n() / 2];
        address p = bm.getPrevOrchestratorInPool(o);
        address q = bm.getNextOrchestratorInPool(o);
        vm.prank(newDelegator);
        uint256 g = gasleft();
        bm.bondWithHint(0.5 ether, o, address(0), address(0), p, q);
        emit log_named_uint("bond new delegator (stay)", g - gasleft());
    }

    function _hint(address member, uint256 newStake) internal view returns (address prev, address next) {
        address cur = bm.getFirstOrchestratorInPool();
        while (cur != address(0)) {
            if (cur != member) {
                if (bm.orchestratorTotalStake(cur) < newStake) return (prev, cur);
                prev = cur;
            }
            cur = bm.getNextOrchestratorInPool(cur);
        }
        return (prev, address(0));
    }

    function test_gas_bondNewDelegatorMove3() public {
        uint256 i = n() / 2 + 5;
        address o = members[i];
        (address p, address q) = _hint(o, bm.orchestratorTotalStake(o) + 3.5 ether);
        vm.prank(newDelegator);
        uint256 g = gasleft();
        bm.bondWithHint(3.5 ether, o, address(0), address(0), p, q);
        emit log_named_uint("bond new delegator (move 3)", g - gasleft());
        require(bm.getNextOrchestratorInPool(p) == o, "placed");
    }

    function test_gas_reward() public {
        uint256 i = n() / 2 + 5;
        address o = members[i];
        uint256 expected = minter.currentMintableTokens() * bm.orchestratorTotalStake(o) / bm.currentRoundTotalActiveStake();
        (address p, address q) = _hint(o, bm.orchestratorTotalStake(o) + expected);
        vm.prank(o);
        uint256 g = gasleft();
        bm.rewardWithHint(p, q);
        emit log_named_uint("reward (hint = current, may be wrong)", g - gasleft());
    }

    function test_gas_rewardOther() public {
        address o = members[3];
        uint256 expected = minter.currentMintableTokens() * bm.orchestratorTotalStake(o) / bm.currentRoundTotalActiveStake();
        (address p, address q) = _hint(o, bm.orchestratorTotalStake(o) + expected);
        vm.prank(o);
        uint256 g = gasleft();
        bm.rewardWithHint(p, q);
        emit log_named_uint("reward (first reward ever, rank 3)", g - gasleft());
    }

    function test_gas_initializeRound() public {
        vm.roll(rounds.nextRoundStartBlock());
        uint256 g = gasleft();
        rounds.initializeRound();
        emit log_named_uint("initializeRound", g - gasleft());
    }

    function test_gas_withdrawFees() public {
        vm.prank(d1);
        uint256 g = gasleft();
        bm.withdrawFees(payable(d1), 0.001 ether);
        emit log_named_uint("withdrawFees (to self, claims 1 round)", g - gasleft());
    }

    function test_gas_claimEarnings() public {
        vm.prank(d1);
        uint256 g = gasleft();
        bm.claimEarnings();
        emit log_named_uint("claimEarnings", g - gasleft());
    }

    event log_named_uint(string key, uint256 val);
}

contract Gas1000 is GasBase {
    function n() internal pure override returns (uint256) { return 1000; }
}

contract Gas10 is GasBase {
    function n() internal pure override returns (uint256) { return 10; }
}

contract GasClaim is Fixture {
    address o = makeAddr("o");
    address d1 = makeAddr("d1");
    function setUp() public override {
        super.setUp();
        _registerOrchestrator(o, 1000 ether, 100_000, 500_000);
        _bond(d1, 10 ether, o);
        vm.prank(d1);
        bm.claimEarnings();
    }
    function _run(uint256 rounds_) internal {
        for (uint256 i = 0; i < rounds_; i++) { _nextRound(); _reward(o); _creditFees(o, 1 ether, _round()); }
        _nextRound();
        vm.resumeGasMetering();
    }
    function test_gas_claim1() public {
        vm.pauseGasMetering();
        _run(1);
        vm.prank(d1);
        uint256 g = gasleft();
        bm.claimEarnings();
        emit log_named_uint("claim after 1", g - gasleft());
    }
    function test_gas_claim100() public {
        vm.pauseGasMetering();
        _run(100);
        vm.prank(d1);
        uint256 g = gasleft();
        bm.claimEarnings();
        emit log_named_uint("claim after 100", g - gasleft());
    }
    event log_named_uint(string key, uint256 val);
}
