// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IServiceRegistry} from "./interfaces/IServiceRegistry.sol";
import {IBondingManager} from "./interfaces/IBondingManager.sol";

/// @title ServiceRegistry
/// @notice What each registered orchestrator offers: its URI, services (with their verifiers) and regions.
contract ServiceRegistry is IServiceRegistry, Ownable {
    /// @inheritdoc IServiceRegistry
    uint256 public constant MAX_SERVICE_URI_LENGTH = 256;
    /// @inheritdoc IServiceRegistry
    uint256 public constant MAX_SERVICES = 32;
    /// @inheritdoc IServiceRegistry
    uint256 public constant MAX_REGIONS = 32;

    /// @inheritdoc IServiceRegistry
    address public bondingManager;

    mapping(address orchestrator => string) private _serviceURIs;
    mapping(address orchestrator => Service[]) private _services;
    mapping(address orchestrator => bytes32[]) private _regions;

    constructor(address bondingManager_) Ownable(msg.sender) {
        if (bondingManager_ == address(0)) revert ZeroAddress();
        bondingManager = bondingManager_;
        emit BondingManagerSet(bondingManager_);
    }

    modifier onlyRegisteredOrchestrator() {
        if (!IBondingManager(bondingManager).isRegisteredOrchestrator(msg.sender)) {
            revert NotRegisteredOrchestrator(msg.sender);
        }
        _;
    }

    /// @inheritdoc IServiceRegistry
    function setServiceURI(string calldata serviceURI) external onlyRegisteredOrchestrator {
        _setServiceURI(serviceURI);
    }

    /// @inheritdoc IServiceRegistry
    function setServices(Service[] calldata services) external onlyRegisteredOrchestrator {
        _setServices(services);
    }

    /// @inheritdoc IServiceRegistry
    function setRegions(bytes32[] calldata regions) external onlyRegisteredOrchestrator {
        _setRegions(regions);
    }

    /// @inheritdoc IServiceRegistry
    function setAll(string calldata serviceURI, Service[] calldata services, bytes32[] calldata regions)
        external
        onlyRegisteredOrchestrator
    {
        _setServiceURI(serviceURI);
        _setServices(services);
        _setRegions(regions);
    }

    /// @inheritdoc IServiceRegistry
    function setBondingManager(address newBondingManager) external onlyOwner {
        if (newBondingManager == address(0)) revert ZeroAddress();
        bondingManager = newBondingManager;
        emit BondingManagerSet(newBondingManager);
    }

    /// @inheritdoc IServiceRegistry
    function getServiceURI(address addr) external view returns (string memory) {
        return _serviceURIs[addr];
    }

    /// @inheritdoc IServiceRegistry
    function getServices(address addr) external view returns (Service[] memory) {
        return _services[addr];
    }

    /// @inheritdoc IServiceRegistry
    function getRegions(address addr) external view returns (bytes32[] memory) {
        return _regions[addr];
    }

    /// @inheritdoc IServiceRegistry
    function offersService(address addr, bytes32 id) external view returns (bool) {
        Service[] storage services = _services[addr];
        uint256 n = services.length;
        for (uint256 i; i < n; ++i) {
            if (services[i].id == id) return true;
        }
        return false;
    }

    /// @inheritdoc IServiceRegistry
    function servesRegion(address addr, bytes32 region) external view returns (bool) {
        bytes32[] storage regions = _regions[addr];
        uint256 n = regions.length;
        for (uint256 i; i < n; ++i) {
            if (regions[i] == region) return true;
        }
        return false;
    }

    function _setServiceURI(string calldata serviceURI) private {
        uint256 length = bytes(serviceURI).length;
        if (length > MAX_SERVICE_URI_LENGTH) revert ServiceUriTooLong(length, MAX_SERVICE_URI_LENGTH);
        _serviceURIs[msg.sender] = serviceURI;
        emit ServiceURIUpdated(msg.sender, serviceURI);
    }

    function _setServices(Service[] calldata services) private {
        uint256 n = services.length;
        if (n > MAX_SERVICES) revert TooManyServices(n, MAX_SERVICES);
        for (uint256 i = 1; i < n; ++i) {
            bytes32 id = services[i].id;
            for (uint256 j; j < i; ++j) {
                if (services[j].id == id) revert DuplicateService(id);
            }
        }
        Service[] storage stored = _services[msg.sender];
        delete _services[msg.sender];
        for (uint256 i; i < n; ++i) {
            stored.push(services[i]);
        }
        emit ServicesUpdated(msg.sender, services);
    }

    function _setRegions(bytes32[] calldata regions) private {
        uint256 n = regions.length;
        if (n > MAX_REGIONS) revert TooManyRegions(n, MAX_REGIONS);
        for (uint256 i = 1; i < n; ++i) {
            bytes32 region = regions[i];
            for (uint256 j; j < i; ++j) {
                if (regions[j] == region) revert DuplicateRegion(region);
            }
        }
        _regions[msg.sender] = regions;
        emit RegionsUpdated(msg.sender, regions);
    }
}
