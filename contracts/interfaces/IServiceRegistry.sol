// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title IServiceRegistry
/// @notice Per orchestrator: its service URI, the services it offers (each with the verifier contract for that
/// service, or none) and the regions it serves. Broadcasters filter orchestrators on these.
/// @dev Service ids are `keccak256("transcode/h264")`-style; regions are `bytes32` short ASCII codes ("eu-west").
interface IServiceRegistry {
    /// @notice A service an orchestrator offers.
    /// @param id The service id, e.g. `keccak256("transcode/h264")`.
    /// @param verifier The verifier contract for the service, or the zero address for none.
    struct Service {
        bytes32 id;
        address verifier;
    }

    /// @notice Thrown when the caller is not a registered orchestrator in the BondingManager.
    error NotRegisteredOrchestrator(address caller);
    /// @notice Thrown when the service URI is longer than `max` bytes.
    error ServiceUriTooLong(uint256 length, uint256 max);
    /// @notice Thrown when more than `max` services are given.
    error TooManyServices(uint256 count, uint256 max);
    /// @notice Thrown when more than `max` regions are given.
    error TooManyRegions(uint256 count, uint256 max);
    /// @notice Thrown when a service id appears twice.
    error DuplicateService(bytes32 id);
    /// @notice Thrown when a region appears twice.
    error DuplicateRegion(bytes32 region);
    /// @notice Thrown when an address argument is the zero address.
    error ZeroAddress();

    /// @notice Emitted when `addr` sets its service URI.
    event ServiceURIUpdated(address indexed addr, string serviceURI);
    /// @notice Emitted when `addr` replaces its services.
    event ServicesUpdated(address indexed addr, Service[] services);
    /// @notice Emitted when `addr` replaces its regions.
    event RegionsUpdated(address indexed addr, bytes32[] regions);
    /// @notice Emitted when the BondingManager is wired.
    event BondingManagerSet(address indexed bondingManager);

    /// @notice Maximum service URI length in bytes (256).
    function MAX_SERVICE_URI_LENGTH() external view returns (uint256);

    /// @notice Maximum number of services per orchestrator (32).
    function MAX_SERVICES() external view returns (uint256);

    /// @notice Maximum number of regions per orchestrator (32).
    function MAX_REGIONS() external view returns (uint256);

    /// @notice The BondingManager consulted for registration.
    function bondingManager() external view returns (address);

    /// @notice Sets the caller's service URI (≤ 256 bytes). Registered orchestrators only.
    function setServiceURI(string calldata serviceURI) external;

    /// @notice Replaces the caller's services (≤ 32, unique ids). Registered orchestrators only.
    function setServices(Service[] calldata services) external;

    /// @notice Replaces the caller's regions (≤ 32, unique). Registered orchestrators only.
    function setRegions(bytes32[] calldata regions) external;

    /// @notice Sets URI, services and regions in one transaction, with the same checks as the single setters.
    function setAll(string calldata serviceURI, Service[] calldata services, bytes32[] calldata regions) external;

    /// @notice The service URI of `addr` (empty when never set).
    function getServiceURI(address addr) external view returns (string memory);

    /// @notice The services `addr` offers.
    function getServices(address addr) external view returns (Service[] memory);

    /// @notice The regions `addr` serves.
    function getRegions(address addr) external view returns (bytes32[] memory);

    /// @notice Whether `addr` offers the service `id`.
    function offersService(address addr, bytes32 id) external view returns (bool);

    /// @notice Whether `addr` serves `region`.
    function servesRegion(address addr, bytes32 region) external view returns (bool);

    /// @notice Wires the BondingManager. Owner only.
    function setBondingManager(address newBondingManager) external;
}
