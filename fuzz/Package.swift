// swift-tools-version:6.1
// Gatehouse fuzzing: a separate package (depending on the root by path) so that the root's
// `swift build` / `swift test` and CI never compile it. Build and run with scripts/fuzz.sh:
//
//   swift build -c release --package-path fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
//
// CBORFuzzer — libFuzzer target over the WebAuthn parsers of GatehouseCore (CBOR reader,
//              attestation object, authenticator data, COSE key, clientDataJSON, the verifier).
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "gatehouse-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "gatehouse", path: ".."),
    ],
    targets: [
        .executableTarget(
            name: "CBORFuzzer",
            dependencies: [
                .product(name: "GatehouseCore", package: "gatehouse"),
                .product(name: "GatehouseCrypto", package: "gatehouse"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
