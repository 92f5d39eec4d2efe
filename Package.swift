// swift-tools-version:6.1
// Gatehouse: two-step verification and session service.
// Layers, bottom to top (see README "Layout"):
//   CHiredis, CLibCrypto, CQRencode  — thin system-library shims (pkg-config, apt providers)
//   GatehouseCrypto                  — libcrypto wrapped: HMAC, SHA, AES-GCM, Ed25519, randomness
//   GatehouseCore                    — OTP, base32, otpauth URIs, QR, tokens, keyring, envelopes (no I/O
//                                      beyond reading key files)
//   GatehouseRedis                   — the hiredis client (I/O threads, pipelining, scripts, streams)
//   gatehouse                        — the executable (swift-argument-parser)
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "gatehouse",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "gatehouse", targets: ["gatehouse"]),
        .library(name: "GatehouseCore", targets: ["GatehouseCore"]),
        .library(name: "GatehouseCrypto", targets: ["GatehouseCrypto"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    ],
    targets: [
        // MARK: C system libraries
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .systemLibrary(
            name: "CLibCrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .systemLibrary(
            name: "CQRencode",
            pkgConfig: "libqrencode",
            providers: [.apt(["libqrencode-dev"])]
        ),

        // MARK: Crypto and OTP/token core (no network I/O)
        .target(
            name: "GatehouseCrypto",
            dependencies: ["CLibCrypto"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "GatehouseCore",
            dependencies: ["GatehouseCrypto", "CQRencode"],
            swiftSettings: swiftSettings
        ),

        // MARK: Executable
        .executableTarget(
            name: "gatehouse",
            dependencies: [
                "GatehouseCore",
                "GatehouseCrypto",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Tests
        .testTarget(
            name: "GatehouseCoreTests",
            dependencies: ["GatehouseCore", "GatehouseCrypto"],
            swiftSettings: swiftSettings
        ),
    ]
)
