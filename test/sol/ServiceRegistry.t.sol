// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "./utils/Test.sol";
import {ServiceRegistry} from "../../contracts/ServiceRegistry.sol";
import {IServiceRegistry} from "../../contracts/interfaces/IServiceRegistry.sol";

contract MockRegistrations {
    mapping(address => bool) public isRegisteredOrchestrator;

    function set(address o, bool registered) external {
        isRegisteredOrchestrator[o] = registered;
    }
}

contract ServiceRegistryTest is Test {
    error OwnableUnauthorizedAccount(address account);

    ServiceRegistry internal registry;
    MockRegistrations internal bm;
    address internal o = makeAddr("orchestrator");
    address internal stranger = makeAddr("stranger");
    bytes32 internal constant H264 = keccak256("transcode/h264");
    bytes32 internal constant HEVC = keccak256("transcode/hevc");
    bytes32 internal constant EU_WEST = "eu-west";
    bytes32 internal constant US_EAST = "us-east";

    function setUp() public {
        bm = new MockRegistrations();
        registry = new ServiceRegistry(address(bm));
        bm.set(o, true);
    }

    function _services(uint256 n) internal pure returns (IServiceRegistry.Service[] memory s) {
        s = new IServiceRegistry.Service[](n);
        for (uint256 i = 0; i < n; i++) {
            s[i] = IServiceRegistry.Service(keccak256(abi.encode("svc", i)), address(uint160(i + 1)));
        }
    }

    function _regions(uint256 n) internal pure returns (bytes32[] memory r) {
        r = new bytes32[](n);
        for (uint256 i = 0; i < n; i++) r[i] = bytes32(i + 1);
    }

    function _uri(uint256 length) internal pure returns (string memory) {
        bytes memory b = new bytes(length);
        for (uint256 i = 0; i < length; i++) b[i] = "a";
        return string(b);
    }

    // ------------------------------------------------------------------------------------------------ construction

    function test_constructor_setsBondingManagerAndOwner() public view {
        assertEq(registry.bondingManager(), address(bm), "bonding manager");
        assertEq(registry.owner(), address(this), "owner");
        assertEq(registry.MAX_SERVICE_URI_LENGTH(), 256, "uri max");
        assertEq(registry.MAX_SERVICES(), 32, "services max");
        assertEq(registry.MAX_REGIONS(), 32, "regions max");
    }

    function test_constructor_revertsForZeroBondingManager() public {
        vm.expectRevert(abi.encodeWithSelector(IServiceRegistry.ZeroAddress.selector));
        new ServiceRegistry(address(0));
    }

    function test_setBondingManager_setsAndEmits() public {
        vm.expectEmit(address(registry));
        emit IServiceRegistry.BondingManagerSet(stranger);
        registry.setBondingManager(stranger);
        assertEq(registry.bondingManager(), stranger, "set");
    }

    function test_setBondingManager_revertsForZeroOrNonOwner() public {
        vm.expectRevert(abi.encodeWithSelector(IServiceRegistry.ZeroAddress.selector));
        registry.setBondingManager(address(0));
        vm.expectRevert(abi.encodeWithSelector(OwnableUnauthorizedAccount.selector, stranger));
        vm.prank(stranger);
        registry.setBondingManager(stranger);
    }

    // -------------------------------------------------------------------------------------------------- service URI

    function test_setServiceURI_storesAndEmits() public {
        vm.expectEmit(address(registry));
        emit IServiceRegistry.ServiceURIUpdated(o, "https://o.example:8935");
        vm.prank(o);
        registry.setServiceURI("https://o.example:8935");
        assertEq(registry.getServiceURI(o), "https://o.example:8935", "uri");
    }

    function test_setServiceURI_acceptsExactly256Bytes() public {
        vm.prank(o);
        registry.setServiceURI(_uri(256));
        assertEq(bytes(registry.getServiceURI(o)).length, 256, "stored");
    }

    function test_setServiceURI_revertsWhenTooLong() public {
        string memory uri = _uri(257);
        vm.expectRevert(abi.encodeWithSelector(IServiceRegistry.ServiceUriTooLong.selector, 257, 256));
        vm.prank(o);
        registry.setServiceURI(uri);
    }

    function test_setServiceURI_revertsWhenCallerNotRegistered() public {
        vm.expectRevert(abi.encodeWithSelector(IServiceRegistry.NotRegisteredOrchestrator.selector, stranger));
        vm.prank(stranger);
        registry.setServiceURI("x");
    }

    function test_setServiceURI_revertsOnceOrchestratorResigned() public {
        bm.set(o, false);
        vm.expectRevert(abi.encodeWithSelector(IServiceRegistry.NotRegisteredOrchestrator.selector, o));
        vm.prank(o);
        registry.setServiceURI("x");
    }

    // ------------------------------------------------------------------------------------------------------ services

    function test_setServices_replacesTheListAndEmits() public {
        vm.prank(o);
        registry.setServices(_services(3));
        IServiceRegistry.Service[] memory two = new IServiceRegistry.Service[](2);
        two[0] = IServiceRegistry.Service(H264, address(0));
        two[1] = IServiceRegistry.Service(HEVC, address(0xbeef));
        vm.expectEmit(address(registry));
        emit IServiceRegistry.ServicesUpdated(o, two);
        vm.prank(o);
        registry.setServices(two);
        IServiceRegistry.Service[] memory got = registry.getServices(o);
        assertEq(got.length, 2, "replaced, not appended");
        assertEq(got[1].id, HEVC, "id");
        assertEq(got[1].verifier, address(0xbeef), "verifier");
        assertTrue(registry.offersService(o, H264), "offers h264");
        assertFalse(registry.offersService(o, keccak256(abi.encode("svc", 0))), "old service gone");
    }

    function test_setServices_acceptsThe32Maximum() public {
        vm.prank(o);
        registry.setServices(_services(32));
        assertEq(registry.getServices(o).length, 32, "32 stored");
    }

    function test_setServices_revertsAbove32() public {
        IServiceRegistry.Service[] memory s = _services(33);
        vm.expectRevert(abi.encodeWithSelector(IServiceRegistry.TooManyServices.selector, 33, 32));
        vm.prank(o);
        registry.setServices(s);
    }

    function test_setServices_revertsOnDuplicateId() public {
        IServiceRegistry.Service[] memory s = _services(4);
        s[3].id = s[1].id;
        vm.expectRevert(abi.encodeWithSelector(IServiceRegistry.DuplicateService.selector, s[1].id));
        vm.prank(o);
        registry.setServices(s);
    }

    function test_setServices_emptyListClears() public {
        vm.prank(o);
        registry.setServices(_services(2));
        vm.prank(o);
        registry.setServices(new IServiceRegistry.Service[](0));
        assertEq(registry.getServices(o).length, 0, "cleared");
    }

    function test_setServices_revertsWhenCallerNotRegistered() public {
        IServiceRegistry.Service[] memory s = _services(1);
        vm.expectRevert(abi.encodeWithSelector(IServiceRegistry.NotRegisteredOrchestrator.selector, stranger));
        vm.prank(stranger);
        registry.setServices(s);
    }

    // ------------------------------------------------------------------------------------------------------- regions

    function test_setRegions_replacesTheListAndEmits() public {
        bytes32[] memory r = new bytes32[](2);
        r[0] = EU_WEST;
        r[1] = US_EAST;
        vm.expectEmit(address(registry));
        emit IServiceRegistry.RegionsUpdated(o, r);
        vm.prank(o);
        registry.setRegions(r);
        assertTrue(registry.servesRegion(o, EU_WEST), "eu-west");
        assertTrue(registry.servesRegion(o, US_EAST), "us-east");
        assertFalse(registry.servesRegion(o, "ap-south"), "not ap-south");
        bytes32[] memory one = new bytes32[](1);
        one[0] = US_EAST;
        vm.prank(o);
        registry.setRegions(one);
        assertEq(registry.getRegions(o).length, 1, "replaced");
        assertFalse(registry.servesRegion(o, EU_WEST), "eu-west gone");
    }

    function test_setRegions_revertsAbove32() public {
        bytes32[] memory r = _regions(33);
        vm.expectRevert(abi.encodeWithSelector(IServiceRegistry.TooManyRegions.selector, 33, 32));
        vm.prank(o);
        registry.setRegions(r);
    }

    function test_setRegions_revertsOnDuplicate() public {
        bytes32[] memory r = _regions(3);
        r[2] = r[0];
        vm.expectRevert(abi.encodeWithSelector(IServiceRegistry.DuplicateRegion.selector, r[0]));
        vm.prank(o);
        registry.setRegions(r);
    }

    function test_setRegions_revertsWhenCallerNotRegistered() public {
        bytes32[] memory r = _regions(1);
        vm.expectRevert(abi.encodeWithSelector(IServiceRegistry.NotRegisteredOrchestrator.selector, stranger));
        vm.prank(stranger);
        registry.setRegions(r);
    }

    // --------------------------------------------------------------------------------------------------------- setAll

    function test_setAll_setsEverythingInOneCall() public {
        bytes32[] memory r = new bytes32[](1);
        r[0] = EU_WEST;
        vm.prank(o);
        registry.setAll("https://o.example", _services(2), r);
        assertEq(registry.getServiceURI(o), "https://o.example", "uri");
        assertEq(registry.getServices(o).length, 2, "services");
        assertTrue(registry.servesRegion(o, EU_WEST), "region");
    }

    function test_setAll_revertsWholeWhenOnePartIsInvalid() public {
        bytes32[] memory r = _regions(2);
        r[1] = r[0];
        vm.expectRevert(abi.encodeWithSelector(IServiceRegistry.DuplicateRegion.selector, r[0]));
        vm.prank(o);
        registry.setAll("https://o.example", _services(2), r);
        assertEq(registry.getServiceURI(o), "", "uri untouched");
        assertEq(registry.getServices(o).length, 0, "services untouched");
    }

    function test_setAll_revertsWhenCallerNotRegistered() public {
        vm.expectRevert(abi.encodeWithSelector(IServiceRegistry.NotRegisteredOrchestrator.selector, stranger));
        vm.prank(stranger);
        registry.setAll("x", _services(1), _regions(1));
    }

    // ---------------------------------------------------------------------------------------------------------- views

    function test_views_emptyForUnknownAddress() public view {
        assertEq(registry.getServiceURI(stranger), "", "uri");
        assertEq(registry.getServices(stranger).length, 0, "services");
        assertEq(registry.getRegions(stranger).length, 0, "regions");
        assertFalse(registry.offersService(stranger, H264), "offers nothing");
        assertFalse(registry.servesRegion(stranger, EU_WEST), "serves nothing");
    }

    function testFuzz_setRegions_uniqueListsRoundTrip(uint256 n, uint256 seed) public {
        n = bound(n, 0, 32);
        bytes32[] memory r = new bytes32[](n);
        for (uint256 i = 0; i < n; i++) r[i] = keccak256(abi.encode(seed, i));
        vm.prank(o);
        registry.setRegions(r);
        bytes32[] memory got = registry.getRegions(o);
        assertEq(got.length, n, "length");
        for (uint256 i = 0; i < n; i++) {
            assertEq(got[i], r[i], "region in order");
            assertTrue(registry.servesRegion(o, r[i]), "serves each");
        }
    }
}
