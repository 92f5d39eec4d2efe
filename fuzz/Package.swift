// swift-tools-version:6.1
// Gatehouse fuzzing: a separate package (depending on the root by path) so that the root's
// `swift build` / `swift test` and CI never compile it. Build and run with scripts/fuzz.sh:
//
//   swift build -c release --package-path fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
//
// SwiftPM links an executable with `main` defined as the module's entry point, so libFuzzer's
// own `main` is not used: CBORFuzzer's `@main` hands argc/argv to `LLVMFuzzerRunDriver`, which
// runs exactly as libFuzzer's main would (same flags, same corpus handling).
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
        // The declaration of libFuzzer's driver entry (the library comes with -sanitize=fuzzer).
        .systemLibrary(name: "CLibFuzzer"),
        .executableTarget(
            name: "CBORFuzzer",
            dependencies: [
                "CLibFuzzer",
                .product(name: "GatehouseCore", package: "gatehouse"),
                .product(name: "GatehouseCrypto", package: "gatehouse"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
