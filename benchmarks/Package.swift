// swift-tools-version:6.1
// Gatehouse benchmarks: a separate package so `swift build`/`swift test` at the root never
// compile jwt-kit, swift-crypto or the benchmark programs. Build and run with ./run-core.sh.
//
// Layers, bottom to top:
//   CMallocCounter, COath  — C: a malloc interposer that counts, and the liboath system library
//   BenchSupport           — timing slices, medians, blackHole, ratio lines, openssl speed runner
//   TokenBench, TOTPBench,
//   WebAuthnBench          — the executables, each printing ratios against references measured
//                            in the same run
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "gatehouse-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "gatehouse", path: ".."),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
    ],
    targets: [
        // MARK: C
        .target(name: "CMallocCounter"),
        .systemLibrary(
            name: "COath",
            pkgConfig: "liboath",
            providers: [.apt(["liboath-dev"])]
        ),

        // MARK: Harness
        .target(
            name: "BenchSupport",
            dependencies: ["CMallocCounter"],
            swiftSettings: swiftSettings
        ),

        // MARK: Benchmarks
        .executableTarget(
            name: "TokenBench",
            dependencies: [
                "BenchSupport",
                .product(name: "GatehouseCore", package: "gatehouse"),
                .product(name: "GatehouseCrypto", package: "gatehouse"),
                .product(name: "JWTKit", package: "jwt-kit"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "TOTPBench",
            dependencies: [
                "BenchSupport",
                "COath",
                .product(name: "GatehouseCore", package: "gatehouse"),
                .product(name: "GatehouseCrypto", package: "gatehouse"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            // Passkey sign-in check (RelyingParty.verifyAssertion, ES256) vs openssl speed ecdsap256.
            name: "WebAuthnBench",
            dependencies: [
                "BenchSupport",
                .product(name: "GatehouseCore", package: "gatehouse"),
                .product(name: "GatehouseCrypto", package: "gatehouse"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            // GatehouseRedis's automatic pipelining vs redis-benchmark; run with ./redis-bench.sh.
            name: "RedisBench",
            dependencies: [
                .product(name: "GatehouseRedis", package: "gatehouse"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
